"""The one backend interface: a running server's API, or the store opened here, behind the same verbs.

chDB lets one process open an embedded store, and that process is normally ``tracemill serve``.
So a command first asks the server (the ``server`` setting, default ``http://127.0.0.1:4318``);
when none answers it opens the store itself; and when the store is locked by another process
and no server answers, the error says exactly that and how to fix it (:func:`connect`). The Python
API (:mod:`tracemill.feedback`) picks its backend from its ``store=``/``endpoint=`` arguments.

Both backends answer the verbs of :class:`Backend` (status, traces, feedback, flags, mining and its
latest labelled run, exports, evals, configuration versions and rollouts) with the
same JSON-ready values; nothing outside this module asks which one it holds. The HTTP side uses only the
standard library, so the CLI needs nothing beyond the core install to talk to a server.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, Protocol

from tracemill import config
from tracemill.errors import ConfigError, ServerError, StoreLockedError
from tracemill.tracer.config import local_server_url

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = [
    "Backend",
    "ServerBackend",
    "ServerError",
    "StoreBackend",
    "connect",
    "default_server_url",
    "fill_authors",
    "open_backend",
    "unauthenticated_author",
]


Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: how long work reports where it is (a server reports nothing until done)."""

Dataset = tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]
"""An export: its train rows, its eval rows and its manifest."""


class Backend(Protocol):
    """What the CLI and the Python API ask of the traces, wherever they are."""

    kind: Literal["server", "store"]
    where: str

    def status(self) -> dict[str, Any]: ...
    def traces(self, **filters: Any) -> list[dict[str, Any]]: ...
    def trace(self, trace_id: str) -> dict[str, Any]: ...
    def record_feedback(self, items: Sequence[Mapping[str, Any]], *, check_only: bool = False) -> list[dict[str, Any]]:
        ...
    def feedback(self, **filters: Any) -> list[dict[str, Any]]: ...
    def conflicts(self, trace_id: str | None = None) -> list[dict[str, Any]]: ...
    def flags(self, **filters: Any) -> list[dict[str, Any]]: ...
    def mine(self, *, since: str | None, remine: bool, progress: Progress | None = None) -> dict[str, Any]: ...
    def latest_miner_run(self) -> dict[str, Any] | None: ...
    def export(self, kind: str, **options: Any) -> Dataset: ...
    def versions(self, *, agent: str | None = None) -> dict[str, Any]: ...
    def version_diff(self, a: str, b: str) -> dict[str, Any]: ...
    def rollout(self, name: str) -> dict[str, Any]: ...
    def rollout_action(self, name: str, action: str, *, reason: str, author: str) -> dict[str, Any]: ...
    def evals(self, *, suite: str | None = None, limit: int = 100) -> dict[str, Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Backend: ...
    def __exit__(self, *exc: object) -> None: ...


def default_server_url(env: Mapping[str, str] | None = None) -> str:
    """The ``server`` setting, else the local server on the ``port`` setting (default 4318)."""
    explicit = config.SERVER.raw(env)
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

    def record_feedback(self, items: Sequence[Mapping[str, Any]], *, check_only: bool = False) -> list[dict[str, Any]]:
        """Items without an author go as they are: the server writes them as the reviewer of this token."""
        path = "/api/feedback" + ("?check_only=true" if check_only else "")
        return self.post(path, fill_authors(items, identity=self.identity))["feedback"]

    def identity(self) -> Mapping[str, Any]:
        """Who the server takes this client's token for: ``GET /api/identity`` (``open`` where it cannot say)."""
        try:
            return self.get("/api/identity")
        except ServerError:
            return {"role": "open", "author": None}

    def feedback(self, **filters: Any) -> list[dict[str, Any]]:
        return self.get("/api/feedback", filters)["feedback"]

    def conflicts(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        return self.get("/api/feedback/conflicts", {"trace_id": trace_id})["conflicts"]

    def flags(self, **filters: Any) -> list[dict[str, Any]]:
        return self.get("/api/flags", filters)["flags"]

    def mine(self, *, since: str | None, remine: bool, progress: Progress | None = None) -> dict[str, Any]:
        """Mine in the server (which owns the store); it answers when done, so ``progress`` hears nothing."""
        return self.post("/api/mine", {"since": since, "remine": remine}, timeout_s=3600)

    def latest_miner_run(self) -> dict[str, Any] | None:
        return self.get("/api/miner/latest")["run"]

    def export(self, kind: str, **options: Any) -> Dataset:
        answer = self.get(f"/api/exports/{kind}", options, timeout_s=600)
        return answer["train"], answer["eval"], answer["manifest"]

    def versions(self, *, agent: str | None = None) -> dict[str, Any]:
        return self.get("/api/versions", {"agent": agent})

    def version_diff(self, a: str, b: str) -> dict[str, Any]:
        return self.get("/api/versions/diff", {"a": a, "b": b})

    def rollout(self, name: str) -> dict[str, Any]:
        return self.get("/api/rollouts/" + urllib.parse.quote(name, safe=""))

    def rollout_action(self, name: str, action: str, *, reason: str, author: str) -> dict[str, Any]:
        path = f"/api/rollouts/{urllib.parse.quote(name, safe='')}/{urllib.parse.quote(action, safe='')}"
        return self.post(path, {"reason": reason, "author": author})
    def evals(self, *, suite: str | None = None, limit: int = 100) -> dict[str, Any]:
        return self.get("/api/evals", {"suite": suite, "limit": limit})

    def close(self) -> None:
        pass

    def __enter__(self) -> ServerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def __init__(self, store: Store, *, other_server: Mapping[str, Any] | None = None, owned: bool = True) -> None:
        """``owned``: :meth:`close` closes the store (False for a store the caller opened and will close)."""
        self._store = store
        self.where = store.location
        self._other_server = dict(other_server) if other_server is not None else None
        self._owned = owned

    @property
    def store(self) -> Store:
        """The open :class:`~tracemill.Store`."""
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

    def record_feedback(self, items: Sequence[Mapping[str, Any]], *, check_only: bool = False) -> list[dict[str, Any]]:
        from tracemill.collector.feedback.feedback import record_feedback

        return record_feedback(self._store, fill_authors(items, identity=None), check_only=check_only)

    def feedback(self, **filters: Any) -> list[dict[str, Any]]:
        from tracemill.collector.feedback.feedback import list_feedback

        return list_feedback(self._store, **filters)

    def conflicts(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        from tracemill.collector.feedback.conflicts import list_conflicts

        return list_conflicts(self._store, trace_id=trace_id)

    def flags(self, **filters: Any) -> list[dict[str, Any]]:
        from tracemill.collector.feedback.feedback import list_flags

        return list_flags(self._store, **filters)

    def mine(self, *, since: str | None, remine: bool, progress: Progress | None = None) -> dict[str, Any]:
        from tracemill.miner import mine

        return mine(self._store, since=since, remine=remine, progress=progress).to_dict()

    def latest_miner_run(self) -> dict[str, Any] | None:
        from tracemill.miner.quality.miner_runs import latest_run

        return latest_run(self._store)

    def export(self, kind: str, *, include_unlabelled: bool = False, **options: Any) -> Dataset:
        from tracemill.trainer.assemble import BuildOptions
        from tracemill.trainer.export import build

        return build(kind, store=self._store, options=BuildOptions(include_unlabelled=include_unlabelled), **options)

    def versions(self, *, agent: str | None = None) -> dict[str, Any]:
        from tracemill.miner.versions.report import versions_report

        return versions_report(self._store, agent=agent)

    def version_diff(self, a: str, b: str) -> dict[str, Any]:
        from tracemill.miner.versions.report import diff_versions

        return diff_versions(self._store, a, b)

    def rollout(self, name: str) -> dict[str, Any]:
        from tracemill.miner.versions.rollouts import rollout_status

        return rollout_status(self._store, name)

    def rollout_action(self, name: str, action: str, *, reason: str, author: str) -> dict[str, Any]:
        from tracemill.miner.versions.rollouts import ACTIONS, set_rollout_state

        if action not in ACTIONS:
            raise ConfigError(f"action must be one of {', '.join(ACTIONS)} (got {action!r})")
        return set_rollout_state(self._store, name, ACTIONS[action], reason=reason, author=author)
    def evals(self, *, suite: str | None = None, limit: int = 100) -> dict[str, Any]:
        from tracemill.trainer.evals.tables import listing

        return listing(self._store, suite=suite, limit=limit)

    def close(self) -> None:
        if self._owned:
            self._store.close()

    def __enter__(self) -> StoreBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fill_authors(
    items: Sequence[Mapping[str, Any]], *, identity: Callable[[], Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """The items with ``author`` left out where none was named, so the server sets it from the token; when
    nobody is authenticated (``identity`` is None for a store opened here, or the server says ``open``),
    ``$USER`` instead."""
    out = [{k: v for k, v in item.items() if not (k == "author" and v is None)} for item in items]
    if any("author" not in item for item in out) and (identity is None or identity().get("role") == "open"):
        for item in out:
            item.setdefault("author", unauthenticated_author())
    return out


def unauthenticated_author() -> str:
    """Who writes where nobody is authenticated (a store opened here, an open server): ``$USER``."""
    return os.environ.get("USER") or "anonymous"


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
    token = token if token is not None else config.TOKEN.raw(env)
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
            f"point this command at it with --server http://HOST:PORT (or {config.SERVER.name}); otherwise stop "
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


@contextmanager
def open_backend(*, store: Store | str | None = None, endpoint: str | None = None) -> Iterator[Backend]:
    """The Python API's backend: ``store`` (a DSN or an open :class:`~tracemill.Store`) in this process, else the
    running server at ``endpoint`` (default: the ``server`` setting, else the local server), with the ``token``
    setting. A server that does not answer is a :class:`ConfigError` that says how to fix the call."""
    if store is not None:
        from tracemill.collector.store.store import using_store

        with using_store(store) as opened:
            yield StoreBackend(opened, owned=False)
        return
    remote = ServerBackend((endpoint or default_server_url()).rstrip("/"), token=config.TOKEN.raw())
    try:
        yield remote
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(
            f"no tracemill server answers at {remote.url} ({exc}); pass store= to use a store directly, or start "
            "`tracemill serve`"
        ) from None


def _probe(remote: ServerBackend, timeout_s: float) -> dict[str, Any] | None:
    """The server's health facts, or None when nothing (or something that is not tracemill) answers."""
    try:
        health = remote.get("/api/health", timeout_s=timeout_s)
    except ServerError as exc:
        if exc.status == 401:
            raise ConfigError(
                f"the tracemill server at {remote.url} requires a token: pass --token or set {config.TOKEN.name}"
                if not remote.has_token
                else f"the tracemill server at {remote.url} refused the token given (--token / {config.TOKEN.name})"
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
