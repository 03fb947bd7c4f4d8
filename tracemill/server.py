"""``tracemill serve``: one process that owns the store, receives OTLP and answers the JSON API.

The app composes the collector's parts: the OTLP receiver at ``/v1/traces`` writing into the
durable spool, the writer draining the spool into the store, the read API under ``/api/``, and
optional forwarding to another OTLP endpoint. Every setting is declared once in
:data:`ENV_VARS`; explicit arguments (the CLI options) win over the environment, which wins
over the defaults, and a bad value stops the server with a message naming the key and the value.
The store itself is ``TRACEMILL_STORE`` (see :mod:`tracemill.collector.dsn`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tracemill.errors import ConfigError
from tracemill.tracer.config import DEFAULT_PORT, EnvVar

__all__ = ["ENV_VARS", "CollectorServer", "ServerSettings", "build_app", "default_spool_dir", "env_name", "serve"]

logger = logging.getLogger("tracemill.server")


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("TRACEMILL_HOST", "host",
           "address `tracemill serve` binds to; default 127.0.0.1. Any other address requires TRACEMILL_TOKEN"),
    EnvVar("TRACEMILL_PORT", "port",
           "port of `tracemill serve` (OTLP/HTTP and the API on one port); default 4318, the OTLP/HTTP port"),
    EnvVar("TRACEMILL_TOKEN", "token",
           "bearer token the server requires on every request, and that the CLI sends; default: none"),
    EnvVar("TRACEMILL_REVIEWERS", "reviewers",
           "file of reviewer tokens, one line 'author token' each, read again when it changes (rotation); a "
           "reviewer's token makes a request that reviewer, and TRACEMILL_TOKEN stays the admin token; default: none"),
    EnvVar("TRACEMILL_SESSION_TTL_S", "session_ttl_s",
           "seconds a review UI sign-in lasts before the token is asked again; default 28800 (8 hours)"),
    EnvVar("TRACEMILL_SERVER", "server",
           "URL where CLI commands look for a running server; default http://127.0.0.1:$TRACEMILL_PORT"),
    EnvVar("TRACEMILL_SPOOL", "spool_dir",
           "directory of the server's durable spool; default: next to an embedded store ('<store>.spool'), "
           "else under the user data dir, one per store"),
    EnvVar("TRACEMILL_SPOOL_MAX_BYTES", "spool_max_bytes",
           "bytes of received spans the spool holds while the store is slow or down, before the receiver "
           "answers 429/503; default 1073741824 (1 GiB)"),
    EnvVar("TRACEMILL_SPOOL_SYNC", "spool_sync",
           "'full': an acknowledged batch survives power loss; 'normal': it survives a crash of the server "
           "process only, and commits are faster; default full"),
    EnvVar("TRACEMILL_MAX_REQUEST_BYTES", "max_request_bytes",
           "largest OTLP request body accepted, compressed and decompressed (larger gets 413); "
           "default 20971520 (20 MiB)"),
    EnvVar("TRACEMILL_BATCH_SPANS", "batch_spans",
           "spans per insert into the store: the writer waits for this many or for the flush interval; "
           "default 20000"),
    EnvVar("TRACEMILL_BATCH_BYTES", "batch_bytes",
           "bytes of spooled payloads per insert (a larger request goes alone); converting an insert takes "
           "several times its bytes, so this bounds the writer's memory; default 16777216 (16 MiB)"),
    EnvVar("TRACEMILL_MAX_INFLIGHT_BYTES", "max_inflight_bytes",
           "request bytes the receiver reads and decodes at once; a request that finds no room within 5s gets "
           "429; default twice TRACEMILL_MAX_REQUEST_BYTES"),
    EnvVar("TRACEMILL_FLUSH_INTERVAL_S", "flush_interval_s",
           "longest time in seconds a received span waits in the spool before it is inserted; default 1.0"),
    EnvVar("TRACEMILL_WRITER_PROCESSES", "writer_processes",
           "worker processes that convert and encode spans for the writer (0: in the writer thread); "
           "default: one per CPU core beyond the first, at most 4, none on 1-2 cores"),
    EnvVar("TRACEMILL_FORWARD", "forward",
           "also send every received batch to this OTLP/HTTP endpoint (best effort), e.g. "
           "http://localhost:4320 for Jaeger; default: none"),
    EnvVar("TRACEMILL_CLUSTER", "cluster",
           "ClickHouse cluster name: the schema is created ON CLUSTER with Replicated engines; default: none"),
    EnvVar("TRACEMILL_OPENINFERENCE", "openinference",
           "with --forward, also write OpenInference attributes (openinference.span.kind, input.value, llm.*, "
           "tool.*) on the forwarded spans, for Arize Phoenix (true/false); default false"),
    EnvVar("TRACEMILL_ALLOWED_HOSTS", "allowed_hosts",
           "comma-separated host names the server also answers to (Host header), e.g. tracemill.internal or "
           "*.example.com; '*' turns the check off; default: only its bound address (and localhost, 127.0.0.1, "
           "[::1] on a loopback or wildcard bind)"),
    EnvVar("TRACEMILL_LOG_LEVEL", "log_level",
           "log level of `tracemill serve`: debug, info, warning or error; default info"),
)

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
DEFAULT_LOG_LEVEL = "info"


def env_name(field: str) -> str:
    """The variable :data:`ENV_VARS` declares for ``field``: the CLI's options and the client read these names."""
    for var in ENV_VARS:
        if var.field == field:
            return var.name
    raise KeyError(f"no server environment variable is declared for {field!r}")


@dataclass(frozen=True)
class ServerSettings:
    """Resolved settings of ``tracemill serve``. Field docs live in :data:`ENV_VARS`."""

    store: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    reviewers: str | None = None
    session_ttl_s: float = 8 * 3600.0
    spool_dir: str | None = None
    spool_max_bytes: int = 1 << 30
    spool_sync: Literal["full", "normal"] = "full"
    max_request_bytes: int = 20 << 20
    batch_spans: int = 20_000
    batch_bytes: int = 16 << 20
    max_inflight_bytes: int | None = None
    """None: twice ``max_request_bytes``."""
    flush_interval_s: float = 1.0
    writer_processes: int | None = None
    """None: :func:`~tracemill.collector.encoder_pool.default_processes`."""
    forward: str | None = None
    cluster: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    openinference: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **explicit: Any) -> ServerSettings:
        """Settings from ``explicit`` values (None means not given), then ``env``, then the defaults."""
        env = os.environ if env is None else env
        defaults = cls()
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(explicit) - fields)
        if unknown:
            raise TypeError(f"unknown server setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        from tracemill.collector.dsn import STORE_ENV

        if env.get(STORE_ENV, "").strip():
            values["store"] = env[STORE_ENV].strip()
        for var in ENV_VARS:
            raw = env.get(var.name)
            if raw is not None and raw.strip() and var.field in fields:
                values[var.field] = _parse(var.name, var.field, raw.strip(), getattr(defaults, var.field))
        for name, value in explicit.items():
            if value is not None:
                values[name] = value
        settings = dataclasses.replace(defaults, **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse settings the server must not run with; each message names the setting and the value."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535 (got {self.port!r}); set --port or TRACEMILL_PORT")
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
                              "set TRACEMILL_SESSION_TTL_S")
        if not self.flush_interval_s > 0:
            raise ConfigError(f"flush_interval_s must be a positive number of seconds (got {self.flush_interval_s!r})")
        if self.spool_sync not in ("full", "normal"):
            raise ConfigError(f"spool_sync must be 'full' or 'normal' (got {self.spool_sync!r})")
        if self.token is not None and not self.token.strip():
            raise ConfigError("the token is empty; give a non-empty --token (TRACEMILL_TOKEN) or none at all")
        if not self.token and not self.reviewers and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host!r} without a token: anyone who can reach it could send and "
                "read traces. Set a bearer token with --token or TRACEMILL_TOKEN, or bind to 127.0.0.1"
            )
        if self.forward and not self.forward.startswith(("http://", "https://")):
            raise ConfigError(f"forward must be an http(s) URL of an OTLP/HTTP endpoint (got {self.forward!r})")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else "[::1]" if self.host == "::" else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


_INT_FIELDS = {
    "port", "spool_max_bytes", "max_request_bytes", "batch_spans", "batch_bytes", "max_inflight_bytes",
    "writer_processes",
}
_FLOAT_FIELDS = {"flush_interval_s", "session_ttl_s"}


def _parse(name: str, field: str, raw: str, default: Any) -> Any:
    try:
        if field in _INT_FIELDS:
            return int(raw)
        if field in _FLOAT_FIELDS:
            return float(raw)
    except ValueError:
        kind = "a whole number" if field in _INT_FIELDS else "a number"
        example = default if default is not None else 1
        raise ConfigError(f"{name}={raw!r} is not {kind}; unset it or give e.g. {name}={example}") from None
    if field == "spool_sync":
        return raw.lower()
    if field == "openinference":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={raw!r} is not true or false; unset it or give e.g. {name}=1")
    if field == "allowed_hosts":
        return tuple(name.strip() for name in raw.split(",") if name.strip())
    return raw


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
    """Where the spool lives unless ``TRACEMILL_SPOOL`` says otherwise: beside an embedded store, else per store."""
    from tracemill.collector.dsn import parse_dsn

    parsed = parse_dsn(dsn)
    if parsed.path is not None:
        suffix = "" if parsed.database == "default" else f"-{parsed.database}"
        return parsed.path.rstrip("/") + f"{suffix}.spool"
    from tracemill.paths import data_dir

    digest = hashlib.sha256(f"{parsed.location}|{parsed.database}".encode()).hexdigest()[:16]
    return os.path.join(data_dir(), "spool", digest)


class CollectorServer:
    """The collector's parts, wired: spool → writer → store link, receiver, forwarder."""

    def __init__(self, settings: ServerSettings) -> None:
        from tracemill.collector.connection import StoreLink
        from tracemill.collector.dsn import default_store_dsn, parse_dsn
        from tracemill.collector.forward import Forwarder
        from tracemill.collector.receiver import TraceReceiver
        from tracemill.collector.spool import Spool
        from tracemill.collector.store import Store
        from tracemill.collector.writer import SpoolWriter

        self.settings = settings
        self.dsn = settings.store or default_store_dsn()
        parsed = parse_dsn(self.dsn)
        self.store_location = parsed.location
        self.store_database = parsed.database
        self.spool_dir = settings.spool_dir or default_spool_dir(self.dsn)
        self.spool = Spool.open(self.spool_dir, max_bytes=settings.spool_max_bytes, synchronous=settings.spool_sync)
        self.link = StoreLink(
            lambda: Store.open(self.dsn, cluster=settings.cluster), location=parsed.location, retry_interval_s=2.0
        )
        from tracemill.collector.encoder_pool import default_processes

        processes = default_processes() if settings.writer_processes is None else settings.writer_processes
        self.writer = SpoolWriter(
            self.spool,
            self.link,
            batch_spans=settings.batch_spans,
            batch_bytes=settings.batch_bytes,
            flush_interval_s=settings.flush_interval_s,
            encoder_processes=processes,
        )
        transform = None
        if settings.openinference:
            from tracemill.openinference_otlp import add_openinference

            transform = add_openinference
        self.forwarder = Forwarder(settings.forward, transform=transform) if settings.forward else None
        self.receiver = TraceReceiver(
            self.spool,
            self.writer,
            max_request_bytes=settings.max_request_bytes,
            max_inflight_bytes=settings.max_inflight_bytes,
            on_accepted=self.forwarder.submit if self.forwarder else None,
        )
        self.outbox = _outbox_watcher(self, settings)
        self.authenticator, self.sessions = _identity(settings)
        self.started_at = time.time()
        self._stopped = False
        self.on_stopped: Callable[[CollectorServer], None] | None = None
        """Called once stopped. Uvicorn re-raises SIGTERM/SIGINT after the app's shutdown, so code after
        it does not run: the lifespan's stop is the last place to report from."""

    def start(self) -> None:
        # Open the store now so a problem shows at startup; the server runs either way.
        with contextlib.suppress(Exception):
            self.link.get()
        self.writer.start()
        if self.forwarder is not None:
            self.forwarder.start()
        if self.outbox is not None:
            self.outbox.start()

    def stop(self, *, drain_timeout_s: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.outbox is not None:
            self.outbox.stop()
        self.writer.stop(drain_timeout_s=drain_timeout_s)
        if self.forwarder is not None:
            self.forwarder.stop()
        self.link.close()
        self.spool.close()
        if self.on_stopped is not None:
            self.on_stopped(self)

    def health(self) -> dict[str, Any]:
        """Cheap facts for probing: who is answering and which store it owns."""
        from tracemill import __version__

        return {
            "service": "tracemill",
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "store": {
                "location": self.store_location,
                "database": self.store_database,
                "available": self.link.is_open,
                "error": self.link.last_error,
            },
            "spooled_spans": self.spool.pending_spans,
            "inserted_spans": self.writer.inserted_spans,
        }

    def status(self) -> dict[str, Any]:
        """Everything ``tracemill status`` shows: the store's contents, spool, writer, receiver, forwarder."""
        from tracemill.collector.api import store_status
        from tracemill.errors import StoreError

        out = self.health()
        try:
            out["store"].update(store_status(self.link.get()))
            out["store"]["available"] = True
        except StoreError as exc:
            out["store"]["available"] = False
            out["store"]["error"] = str(exc)
        stats = self.spool.stats()
        out["spool"] = {"directory": self.spool_dir, **dataclasses.asdict(stats)}
        out["writer"] = self.writer.status()
        out["receiver"] = self.receiver.status()
        out["forward"] = self.forwarder.status() if self.forwarder else None
        out["outbox"] = self.outbox.status() if self.outbox else None
        out["url"] = self.settings.url
        out["auth"] = self.authenticator.required
        out["reviewers"] = self.authenticator.reviewers is not None
        return out


def _identity(settings: ServerSettings) -> tuple[Any, Any]:
    """Who the server can tell apart (admin token, reviewers file) and the UI's sessions (None without tokens)."""
    from tracemill.collector.reviewers import Authenticator, ReviewerFile
    from tracemill.ui.sessions import SessionStore

    reviewers = ReviewerFile(settings.reviewers) if settings.reviewers else None
    authenticator = Authenticator(settings.token, reviewers)
    sessions = (SessionStore(settings.session_ttl_s, still_valid=authenticator.still_valid)
                if authenticator.required else None)
    return authenticator, sessions


def _outbox_watcher(server: CollectorServer, settings: ServerSettings) -> Any:
    """The server on the port zero-config tracing targets takes in the spans it kept while no server ran."""
    from tracemill.tracer.config import local_server_port

    if settings.port != local_server_port():
        return None
    from tracemill.outbox import OutboxWatcher
    from tracemill.paths import outbox_dir

    return OutboxWatcher(server, outbox_dir())


def build_app(server: CollectorServer) -> Any:
    """The Starlette app of a server: OTLP receiver, JSON API, review UI, the request guard (Host, cross-site
    writes), bearer token when one is set."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from tracemill.api_routes import api_routes
    from tracemill.collector.auth import BearerTokenMiddleware
    from tracemill.request_guard import RequestGuardMiddleware
    from tracemill.ui.routes import ui_routes
    from tracemill.ui.security import UiGuardMiddleware

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(server.start)
        try:
            yield
        finally:
            await run_in_threadpool(server.stop)

    middleware = [Middleware(RequestGuardMiddleware, bind_host=server.settings.host,
                             allowed_hosts=server.settings.allowed_hosts)]
    # Inside the Host check, before the bearer check: the review UI's cookie stands for the bearer token.
    middleware.append(Middleware(UiGuardMiddleware, sessions=server.sessions))
    if server.authenticator.required:
        middleware.append(Middleware(BearerTokenMiddleware, authenticator=server.authenticator))
    routes = [Route("/v1/traces", server.receiver.handle, methods=["POST"]), *api_routes(server), *ui_routes(server)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def serve(
    settings: ServerSettings,
    *,
    on_ready: Callable[[CollectorServer, str], None] | None = None,
    on_stopped: Callable[[CollectorServer], None] | None = None,
) -> None:
    """Run the server until SIGINT/SIGTERM; on the way out the writer drains what it can.

    The listening socket is bound before anything else starts, so a busy port is reported as
    such; ``port=0`` picks a free port (``on_ready`` receives the URL actually bound).
    ``on_stopped`` is called once everything is stopped and the spool closed.
    """
    import uvicorn

    _give_large_blocks_back()
    sock = _bind(settings)
    try:
        server = CollectorServer(settings)
    except BaseException:
        sock.close()
        raise
    try:
        bound_port = sock.getsockname()[1]
        url = dataclasses.replace(settings, port=bound_port).url
        config = uvicorn.Config(
            build_app(server),
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        uv = uvicorn.Server(config)
        if on_ready is not None:
            _call_when_started(uv, lambda: on_ready(server, url))
        server.on_stopped = on_stopped
        uv.run(sockets=[sock])
    finally:
        server.stop()
        sock.close()


def _give_large_blocks_back() -> None:
    """Make glibc's malloc return freed large blocks (request bodies, payloads) to the system at once.

    By default glibc raises its mmap threshold to the size of the largest block freed so far (up
    to 32 MiB), after which such blocks come from per-thread heaps that keep them when freed; with
    the receiver's worker threads each holding a few multi-MiB requests' worth, 40 requests of
    2 MiB left the server 60 MiB larger for good. A fixed threshold (the default 128 KiB) keeps
    large blocks in their own mappings. Not glibc (musl, macOS): nothing to do.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not hasattr(os, "confstr"):
        return
    try:
        if "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or "").lower():
            return
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD; setting it also stops the dynamic adjustment
    except (OSError, ValueError, AttributeError):
        return


def _bind(settings: ServerSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        hint = " (is another `tracemill serve` running? `tracemill status` tells)" if exc.errno == 98 else ""
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}{hint}; "
            "choose another --port (TRACEMILL_PORT)"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _call_when_started(uv: Any, callback: Callable[[], None]) -> None:
    def wait() -> None:
        while not uv.started and not uv.should_exit:
            time.sleep(0.02)
        if uv.started:
            callback()

    threading.Thread(target=wait, name="tracemill-ready", daemon=True).start()
