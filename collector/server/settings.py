"""Settings of ``tracemill serve``: the server's part of :mod:`tracemill.config`, resolved and checked.

Explicit arguments (the CLI options) win over the environment, which wins over the defaults declared in
:mod:`tracemill.config`; a bad value stops the server with a message naming the key and the value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tracemill import config
from tracemill.config import Setting
from tracemill.errors import ConfigError

__all__ = ["DEFAULT_LOG_LEVEL", "ENV_VARS", "ServerSettings", "default_spool_dir", "env_name", "is_loopback"]

ENV_VARS: tuple[Setting, ...] = tuple(s for s in config.SETTINGS if "server" in s.readers)
"""The settings ``tracemill serve`` reads (the store, the port, the token and the server's own)."""

DEFAULT_LOG_LEVEL: str = config.LOG_LEVEL.default
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def env_name(field: str) -> str:
    """The variable declared for the server or CLI setting ``field``: the CLI's options and the client read it."""
    for var in config.SETTINGS:
        if var.field == field and ("server" in var.readers or "cli" in var.readers):
            return var.name
    raise KeyError(f"no server environment variable is declared for {field!r}")


@dataclass(frozen=True)
class ServerSettings:
    """Resolved settings of ``tracemill serve``. Each field's meaning and default are declared in
    :mod:`tracemill.config`."""

    store: str | None = config.STORE.default
    host: str = config.HOST.default
    port: int = config.PORT.default
    token: str | None = config.TOKEN.default
    reviewers: str | None = config.REVIEWERS.default
    session_ttl_s: float = config.SESSION_TTL_S.default
    spool_dir: str | None = config.SPOOL.default
    spool_max_bytes: int = config.SPOOL_MAX_BYTES.default
    spool_sync: Literal["full", "normal"] = config.SPOOL_SYNC.default
    max_request_bytes: int = config.MAX_REQUEST_BYTES.default
    batch_spans: int = config.BATCH_SPANS.default
    batch_bytes: int = config.BATCH_BYTES.default
    max_inflight_bytes: int | None = config.MAX_INFLIGHT_BYTES.default
    """None: twice ``max_request_bytes``."""
    flush_interval_s: float = config.FLUSH_INTERVAL_S.default
    writer_processes: int | None = config.WRITER_PROCESSES.default
    """None: :func:`~tracemill.collector.ingest.encoder_pool.default_processes`."""
    forward: str | None = config.FORWARD.default
    cluster: str | None = config.CLUSTER.default
    allowed_hosts: tuple[str, ...] = config.ALLOWED_HOSTS.default
    openinference: bool = config.FORWARD_OPENINFERENCE.default
    rollout_check_s: float = config.ROLLOUT_CHECK_S.default

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **explicit: Any) -> ServerSettings:
        """Settings from ``explicit`` values (None means not given), then ``env``, then the defaults."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(explicit) - fields)
        if unknown:
            raise TypeError(f"unknown server setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for var in ENV_VARS:
            if var.field in fields and var.raw(env) is not None:
                values[var.field] = config.read(var, env)
        for name, value in explicit.items():
            if value is not None:
                values[name] = value
        settings = dataclasses.replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse settings the server must not run with; each message names the setting and the value."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535 (got {self.port!r}); set --port or {config.PORT.name}")
        for name in ("spool_max_bytes", "max_request_bytes", "batch_spans", "batch_bytes", "max_inflight_bytes"):
            value = getattr(self, name)
            if value is None and name == "max_inflight_bytes":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number (got {value!r})")
        if self.writer_processes is not None and (
            isinstance(self.writer_processes, bool) or not isinstance(self.writer_processes, int)
            or self.writer_processes < 0
        ):
            raise ConfigError(f"writer_processes must be 0 or a positive whole number (got {self.writer_processes!r})")
        if not self.session_ttl_s > 0:
            raise ConfigError(f"session_ttl_s must be a positive number of seconds (got {self.session_ttl_s!r}); "
                              f"set {config.SESSION_TTL_S.name}")
        if not self.flush_interval_s > 0:
            raise ConfigError(f"flush_interval_s must be a positive number of seconds (got {self.flush_interval_s!r})")
        if not self.rollout_check_s >= 0:
            raise ConfigError(f"rollout_check_s must be 0 (off) or a number of seconds (got {self.rollout_check_s!r})")
        if self.spool_sync not in ("full", "normal"):
            raise ConfigError(f"spool_sync must be 'full' or 'normal' (got {self.spool_sync!r})")
        self._validate_exposure()

    def _validate_exposure(self) -> None:
        """The token, the bind address and the forward target: what decides who can reach the traces."""
        token = config.TOKEN.name
        if self.token is not None and not self.token.strip():
            raise ConfigError(f"the token is empty; give a non-empty --token ({token}) or none at all")
        if not self.token and not self.reviewers and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host!r} without a token: anyone who can reach it could send and "
                f"read traces. Set a bearer token with --token or {token}, or bind to 127.0.0.1"
            )
        if self.forward and not self.forward.startswith(("http://", "https://")):
            raise ConfigError(f"forward must be an http(s) URL of an OTLP/HTTP endpoint (got {self.forward!r})")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else "[::1]" if self.host == "::" else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def default_spool_dir(dsn: str) -> str:
    """Where the spool lives unless the spool setting says otherwise: beside an embedded store, else per store."""
    from tracemill.collector.store.dsn import parse_dsn

    parsed = parse_dsn(dsn)
    if parsed.path is not None:
        suffix = "" if parsed.database == "default" else f"-{parsed.database}"
        return parsed.path.rstrip("/") + f"{suffix}.spool"
    from tracemill.paths import data_dir

    digest = hashlib.sha256(f"{parsed.location}|{parsed.database}".encode()).hexdigest()[:16]
    return os.path.join(data_dir(), "spool", digest)
