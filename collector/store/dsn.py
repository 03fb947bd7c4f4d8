"""Store DSNs: one string names where traces live.

Two forms are accepted:

- ``chdb:///abs/path[?database=name]``: an embedded store, a real ClickHouse engine running
  inside this process on a local directory (one process per directory).
- ``http(s)://user:pass@host:8123/db[?setting=value]``: a ClickHouse server. The path names the
  database; query parameters are handed to clickhouse-connect (``compress``, ``secure``, settings).

The database defaults to ``default`` in both forms. For the embedded form it is a query
parameter, not the path, because the path is the directory.

This module imports only the standard library and :mod:`tracemill.paths`, so configuration code can
validate a DSN without the ``[server]`` extra.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlsplit, urlunsplit

from tracemill import config
from tracemill.errors import ConfigError

__all__ = ["DEFAULT_DATABASE", "STORE_ENV", "StoreDsn", "default_store_dsn", "parse_dsn"]

STORE_ENV = config.STORE.name
"""Environment variable holding the store DSN (declared in :mod:`tracemill.config`)."""

DEFAULT_DATABASE = "default"

ACCEPTED_FORMS = "chdb:///absolute/path[?database=name] or http(s)://user:password@host:8123/database"

_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class StoreDsn:
    """A parsed, validated store DSN."""

    kind: Literal["chdb", "http"]
    database: str
    path: str | None = None
    """Directory of an embedded store; None for a server."""
    url: str | None = None
    """Server URL without the database path (credentials and query parameters kept); None for chDB."""

    @property
    def embedded(self) -> bool:
        return self.kind == "chdb"

    @property
    def location(self) -> str:
        """Where the store is, fit for messages and logs: the password is never shown."""
        if self.path is not None:
            return self.path
        return redact(self.url or "")


def default_store_dsn(env: Mapping[str, str] = os.environ) -> str:
    """The DSN to use when none is given: the store setting, else ``<data dir>/store`` (:mod:`tracemill.paths`)."""
    configured = config.STORE.raw(env)
    if configured:
        return configured
    from tracemill.paths import data_dir

    return "chdb://" + quote(os.path.join(data_dir(env), "store"))


def parse_dsn(dsn: str, *, database: str | None = None) -> StoreDsn:
    """Validate ``dsn`` and split it into what the store needs; ``database`` overrides the DSN's.

    Raises :class:`ConfigError` naming the value and the accepted forms.
    """
    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigError(f"store DSN is empty (got {dsn!r}); expected {ACCEPTED_FORMS}")
    dsn = dsn.strip()
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - property access validates the port
    except ValueError as exc:
        raise ConfigError(f"store DSN {redact(dsn)!r} is not a valid URL ({exc}); expected {ACCEPTED_FORMS}") from exc
    scheme = parts.scheme.lower()
    if scheme == "chdb":
        return _parse_chdb(dsn, parts, database)
    if scheme in ("http", "https"):
        return _parse_http(dsn, parts, database)
    raise ConfigError(f"store DSN {redact(dsn)!r} has scheme {parts.scheme or '(none)'!r}; expected {ACCEPTED_FORMS}")


def _parse_chdb(dsn: str, parts: SplitResult, database: str | None) -> StoreDsn:
    if parts.netloc:
        raise ConfigError(
            f"store DSN {dsn!r} does not name an absolute directory: chDB DSNs have three slashes, "
            f"as in 'chdb:///home/me/traces' (expected {ACCEPTED_FORMS})"
        )
    path = unquote(parts.path)
    if not os.path.isabs(path) or path.rstrip("/") == "":
        raise ConfigError(f"store DSN {dsn!r} must name an absolute directory, e.g. chdb:///home/me/traces")
    params = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(params) - {"database"})
    if unknown:
        raise ConfigError(
            f"store DSN {dsn!r} has unknown parameter(s) {', '.join(unknown)}; chDB DSNs accept only ?database=name"
        )
    db = database or (params["database"][-1] if "database" in params else "") or DEFAULT_DATABASE
    return StoreDsn(kind="chdb", path=os.path.normpath(path), database=_check_database(db, dsn))


def _parse_http(dsn: str, parts: SplitResult, database: str | None) -> StoreDsn:
    if not parts.hostname:
        raise ConfigError(f"store DSN {redact(dsn)!r} has no host; expected {ACCEPTED_FORMS}")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) > 1:
        raise ConfigError(
            f"store DSN {redact(dsn)!r} has path {parts.path!r}; the path of a server DSN is only the "
            f"database name, as in http://localhost:8123/traces"
        )
    db = database or (unquote(segments[0]) if segments else "") or DEFAULT_DATABASE
    url = urlunsplit((parts.scheme.lower(), parts.netloc, "", parts.query, ""))
    return StoreDsn(kind="http", url=url, database=_check_database(db, dsn))


def _check_database(name: str, dsn: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ConfigError(
            f"database name {name!r} (from store DSN {redact(dsn)!r}) is not allowed; "
            "use letters, digits and underscores, starting with a letter or underscore"
        )
    return name


def redact(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return dsn
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit((parts.scheme, f"{user}:***@{netloc[2]}", parts.path, parts.query, parts.fragment))
