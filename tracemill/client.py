"""How CLI commands reach the traces: through a running server's API, or by opening the store.

chDB lets one process open an embedded store, and that process is normally ``tracemill serve``.
So a command first asks the server (``TRACEMILL_SERVER``, default ``http://127.0.0.1:4318``);
when none answers it opens the store itself; and when the store is locked by another process
and no server answers, the error says exactly that and how to fix it.

Both backends return the same JSON-ready dicts (from :mod:`tracemill.collector.server.api`). The HTTP
side uses only the standard library, so the CLI needs nothing beyond the core install to talk
to a server.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from tracemill.collector.server.server import env_name
from tracemill.errors import ConfigError, ServerError, StoreLockedError
from tracemill.tracer.config import local_server_url

__all__ = ["Backend", "ServerBackend", "ServerError", "StoreBackend", "connect", "default_server_url"]


class Backend(Protocol):
    kind: Literal["server", "store"]
    where: str

    def status(self) -> dict[str, Any]: ...
    def traces(self, **filters: Any) -> list[dict[str, Any]]: ...
    def trace(self, trace_id: str) -> dict[str, Any]: ...
    def close(self) -> None: ...


def default_server_url(env: Mapping[str, str] | None = None) -> str:
    """``TRACEMILL_SERVER``, else the local server on ``TRACEMILL_PORT`` (default 4318)."""
    env = os.environ if env is None else env
    explicit = env.get(env_name("server"), "").strip()
    if explicit:
        return explicit.rstrip("/")
    return local_server_url(env)


class ServerBackend:
    """The JSON API of a running ``tracemill serve``."""

    kind: Literal["server", "store"] = "server"

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.where = self.url
        self._token = token
        self._timeout_s = timeout_s

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, timeout_s: float | None = None) -> Any:
        query = ""
        if params:
            pairs: list[tuple[str, str]] = []
            for key, value in params.items():
                if value is None or value is False:
                    continue
                if isinstance(value, Mapping):
                    pairs += [(key, f"{k}={v}") for k, v in value.items()]
                else:
                    pairs.append((key, "true" if value is True else str(value)))
            query = "?" + urllib.parse.urlencode(pairs) if pairs else ""
        request = urllib.request.Request(self.url + path + query, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self._timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _server_error(self.url, exc) from None

    def post(self, path: str, body: Any, *, timeout_s: float | None = None) -> Any:
        """POST ``body`` as JSON and return the JSON answer (errors as :class:`ServerError`)."""
        headers = {**self._headers(), "Content-Type": "application/json"}
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self._timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _server_error(self.url, exc) from None

    def status(self) -> dict[str, Any]:
        return self.get("/api/status")

    def traces(self, **filters: Any) -> list[dict[str, Any]]:
        if "errors_only" in filters:
            filters["errors"] = filters.pop("errors_only")
        if "attributes" in filters:
            filters["attr"] = filters.pop("attributes")
        return self.get("/api/traces", filters)["traces"]

    def trace(self, trace_id: str) -> dict[str, Any]:
        return self.get("/api/traces/" + urllib.parse.quote(trace_id, safe=""))

    def close(self) -> None:
        pass

    @property
    def has_token(self) -> bool:
        return bool(self._token)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers


class StoreBackend:
    """The store opened by this process (no server running)."""

    kind: Literal["server", "store"] = "store"

    def __init__(self, store: Any, *, other_server: Mapping[str, Any] | None = None) -> None:
        self._store = store
        self.where = store.location
        self._other_server = dict(other_server) if other_server is not None else None

    @property
    def store(self) -> Any:
        """The open :class:`~tracemill.Store`, for commands that call library code on it directly."""
        return self._store

    def status(self) -> dict[str, Any]:
        """The store's status; ``other_server`` names the server that answered for another store, if one did."""
        from tracemill.collector.server.api import store_status

        out: dict[str, Any] = {"server": None, "store": {**store_status(self._store), "available": True}}
        if self._other_server is not None:
            out["other_server"] = self._other_server
        return out

    def traces(self, **filters: Any) -> list[dict[str, Any]]:
        from tracemill.collector.server.api import list_traces

        return list_traces(self._store, **filters)

    def trace(self, trace_id: str) -> dict[str, Any]:
        from tracemill.collector.server.api import get_trace

        return get_trace(self._store, trace_id)

    def close(self) -> None:
        self._store.close()


def connect(
    *,
    server: str | None = None,
    store: str | None = None,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    probe_timeout_s: float = 1.5,
) -> Backend:
    """The server at ``server`` if one answers there (and serves ``store``, when one is named), else the store.

    Raises :class:`StoreLockedError` with what to do when the store is held by another process and
    no server answers, and :class:`ConfigError` when the server wants a token that was not given.
    """
    env = os.environ if env is None else env
    url = (server or default_server_url(env)).rstrip("/")
    token = token if token is not None else (env.get(env_name("token")) or None)
    remote = ServerBackend(url, token=token)
    health = _probe(remote, probe_timeout_s)
    if health is not None and (store is None or _same_store(store, health)):
        return remote
    from tracemill.collector.store.dsn import default_store_dsn
    from tracemill.deps import require

    require("clickhouse_connect", extra="server", feature="Reading the store without a running server")
    from tracemill.collector.store.store import Store

    dsn = store or default_store_dsn(env)
    try:
        opened = Store.open(dsn)
    except StoreLockedError as exc:
        elsewhere = (
            f"The server at {url} serves another store ({health['store']['location']})."
            if health is not None
            else f"No tracemill server answers at {url}."
        )
        raise StoreLockedError(
            f"{exc} {elsewhere} If the process holding the store is `tracemill serve` on another address, "
            "point this command at it with --server http://HOST:PORT (or TRACEMILL_SERVER); otherwise stop "
            "that process, or start `tracemill serve` and run this command again."
        ) from None
    from tracemill.collector.ingest.outbox import ingest_for_command

    ingest_for_command(opened, store, env)
    other = None
    if health is not None:
        other = {"url": url, "pid": health.get("pid"), "store": {
            "location": (health.get("store") or {}).get("location"),
            "database": (health.get("store") or {}).get("database"),
        }}  # fmt: skip
    return StoreBackend(opened, other_server=other)


def _probe(remote: ServerBackend, timeout_s: float) -> dict[str, Any] | None:
    """The server's health facts, or None when nothing (or something that is not tracemill) answers."""
    try:
        health = remote.get("/api/health", timeout_s=timeout_s)
    except ServerError as exc:
        if exc.status == 401:
            raise ConfigError(
                f"the tracemill server at {remote.url} requires a token: pass --token or set TRACEMILL_TOKEN"
                if not remote.has_token
                else f"the tracemill server at {remote.url} refused the token given (--token / TRACEMILL_TOKEN)"
            ) from None
        if exc.status == 403:  # the request guard: a Host name the server does not answer to
            raise ConfigError(str(exc)) from None
        return None
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not isinstance(health, dict) or health.get("service") != "tracemill":
        return None
    return health


def _same_store(store: str, health: Mapping[str, Any]) -> bool:
    from tracemill.collector.store.dsn import parse_dsn

    wanted = parse_dsn(store)
    served = health.get("store") or {}
    return served.get("location") == wanted.location and served.get("database") == wanted.database


def _server_error(url: str, exc: urllib.error.HTTPError) -> ServerError:
    try:
        message = json.loads(exc.read()).get("error") or exc.reason
    except (ValueError, AttributeError, OSError):
        message = exc.reason
    return ServerError(f"the server at {url} answered {exc.code}: {message}", status=exc.code)
