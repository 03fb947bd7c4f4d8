"""``tracemill serve``: one process that owns the store, receives OTLP and answers the JSON API.

The app composes the collector's parts: the OTLP receiver at ``/v1/traces`` writing into the
durable spool, the writer draining the spool into the store, the read API under ``/api/``, and
optional forwarding to another OTLP endpoint. Its settings are in
:mod:`tracemill.collector.server.settings`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from tracemill import config
from tracemill.collector.server.settings import (
    DEFAULT_LOG_LEVEL,
    ENV_VARS,
    ServerSettings,
    default_spool_dir,
    env_name,
    is_loopback,
)
from tracemill.errors import ConfigError

__all__ = [
    "DEFAULT_LOG_LEVEL", "ENV_VARS", "CollectorServer", "ServerSettings", "build_app", "default_spool_dir", "env_name",
    "is_loopback", "serve",
]

logger = logging.getLogger("tracemill.collector.server.server")


class CollectorServer:
    """The collector's parts, wired: spool → writer → store link, receiver, forwarder."""

    def __init__(self, settings: ServerSettings) -> None:
        from tracemill.collector.ingest.forward import Forwarder
        from tracemill.collector.ingest.receiver import TraceReceiver
        from tracemill.collector.ingest.spool import Spool
        from tracemill.collector.ingest.writer import SpoolWriter
        from tracemill.collector.store.connection import StoreLink
        from tracemill.collector.store.dsn import default_store_dsn, parse_dsn
        from tracemill.collector.store.store import Store

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
        from tracemill.collector.ingest.encoder_pool import default_processes

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
            from tracemill.collector.ingest.openinference_otlp import add_openinference

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
        from tracemill.collector.server.rollout_watch import RolloutWatcher

        self.rollouts = RolloutWatcher(self.link.get, interval_s=settings.rollout_check_s)
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
        if self.settings.rollout_check_s > 0:
            self.rollouts.start()

    def stop(self, *, drain_timeout_s: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.outbox is not None:
            self.outbox.stop()
        self.rollouts.stop()
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
        from tracemill.collector.server.api import store_status
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
    from tracemill.collector.feedback.reviewers import Authenticator, ReviewerFile
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
    from tracemill.collector.ingest.outbox import OutboxWatcher
    from tracemill.paths import outbox_dir

    return OutboxWatcher(server, outbox_dir())


def build_app(server: CollectorServer) -> Any:
    """The Starlette app of a server: OTLP receiver, JSON API, review UI, the request guard (Host, cross-site
    writes), bearer token when one is set."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from tracemill.collector.server.api_routes import api_routes
    from tracemill.collector.server.api_versions import version_routes
    from tracemill.collector.server.auth import BearerTokenMiddleware
    from tracemill.collector.server.request_guard import RequestGuardMiddleware
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
    routes = [Route("/v1/traces", server.receiver.handle, methods=["POST"]), *api_routes(server),
              *version_routes(server), *ui_routes(server)]
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
            f"choose another --port ({config.PORT.name})"
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
