"""The JSON API under ``/api/``: HTTP in front of :mod:`tracemill.collector.api`.

Other tracemill commands use it when a server owns the store (chDB lets one process open it).
Errors are JSON ``{"error": message}``: 400 for a bad parameter, 404 for an unknown trace,
503 with ``Retry-After`` while the store is unavailable. Queries run in worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracemill.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from tracemill.server import CollectorServer

__all__ = ["api_routes"]


def api_routes(server: CollectorServer) -> list[Route]:
    from tracemill.collector import api

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(server.health())

    async def status(request: Request) -> JSONResponse:
        return await _answer(server.status)

    async def traces(request: Request) -> JSONResponse:
        query = request.query_params
        try:
            filters = {
                "limit": _int(query.get("limit", "20"), "limit"),
                "offset": _int(query.get("offset", "0"), "offset"),
                "service": query.get("service") or None,
                "search": query.get("search") or None,
                "errors_only": query.get("errors", "").lower() in ("1", "true", "yes"),
                "since": query.get("since") or None,
                "until": query.get("until") or None,
                "attributes": dict(_pair(item) for item in query.getlist("attr")),
            }
        except ConfigError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return await _answer(lambda: {"traces": api.list_traces(server.link.get(), **filters)})

    async def trace(request: Request) -> JSONResponse:
        trace_id = request.path_params["trace_id"]
        return await _answer(lambda: api.get_trace(server.link.get(), trace_id))

    return [
        Route("/", health, methods=["GET"]),
        Route("/api/health", health, methods=["GET"]),
        Route("/api/status", status, methods=["GET"]),
        Route("/api/traces", traces, methods=["GET"]),
        Route("/api/traces/{trace_id}", trace, methods=["GET"]),
    ]


async def _answer(produce: Callable[[], Any]) -> JSONResponse:
    from tracemill.collector.api import TraceNotFoundError

    try:
        return JSONResponse(await run_in_threadpool(produce))
    except TraceNotFoundError as exc:
        return JSONResponse({"error": str(exc)}, 404)
    except ConfigError as exc:
        return JSONResponse({"error": str(exc)}, 400)
    except StoreError as exc:
        return JSONResponse({"error": str(exc)}, 503, headers={"Retry-After": "2"})


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number (got {raw!r})") from None


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"attr must look like key=value (got {item!r})")
    return key, value
