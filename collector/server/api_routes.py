"""The JSON API under ``/api/``: HTTP in front of :mod:`tracemill.collector.server.api` and
:mod:`tracemill.collector.feedback.feedback`.

Other tracemill commands use it when a server owns the store (chDB lets one process open it).
Errors are JSON ``{"error": message}``: 400 for a bad parameter or body, 403 for a feedback item
naming an author the caller's token may not write as, 404 for an unknown trace or span, 413 for a
body over the limit, 503 with ``Retry-After`` while the store is unavailable.
Queries run in worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracemill.collector.feedback.reviewers import apply_identity
from tracemill.collector.feedback.strict_json import loads_strict
from tracemill.collector.ingest.http_body import read_bounded_body
from tracemill.collector.server.auth import identity_of
from tracemill.collector.store.query import parse_attributes
from tracemill.errors import ConfigError, ForbiddenError, NotFoundError, PayloadTooLargeError, StoreError

if TYPE_CHECKING:
    from tracemill.collector.server.host import ServerHost

__all__ = ["MAX_API_BODY_BYTES", "api_routes"]

MAX_API_BODY_BYTES = 8 << 20
"""Largest JSON body the API reads (feedback writes)."""


def api_routes(server: ServerHost) -> list[Route]:
    """Every route under ``/api/`` (and ``/``, the health check)."""
    return [*_read_routes(server), *_feedback_routes(server), *_work_routes(server), *_eval_routes(server)]


def _read_routes(server: ServerHost) -> list[Route]:
    """Health, status, trace lists and one trace."""
    from tracemill.collector.server import api

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(server.health())

    async def status(request: Request) -> JSONResponse:
        return await _answer(server.status)

    async def traces(request: Request) -> JSONResponse:
        query = request.query_params
        try:
            filters: dict[str, Any] = {
                "limit": _int(query.get("limit", "20"), "limit"),
                "offset": _int(query.get("offset", "0"), "offset"),
                "service": query.get("service") or None,
                "search": query.get("search") or None,
                "errors_only": query.get("errors", "").lower() in ("1", "true", "yes"),
                "since": query.get("since") or None,
                "until": query.get("until") or None,
                "attributes": parse_attributes(query.getlist("attr"), option="attr"),
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


def _feedback_routes(server: ServerHost) -> list[Route]:
    """Feedback reads and writes, conflicts, and the miner's flags."""
    from tracemill.collector.feedback import feedback

    async def feedback_list(request: Request) -> JSONResponse:
        keys = ("trace_id", "span_id", "name", "author", "kind")
        return await _listing(server, request, "feedback", feedback.list_feedback, keys)

    async def feedback_write(request: Request) -> JSONResponse:
        """One feedback object, or a list of them: all stored, or none (the error says which item failed)."""
        document, refused = await _json_body(request, advice="send fewer items")
        if refused is not None:
            return refused
        identity = identity_of(request.scope)
        try:
            items = apply_identity(document if isinstance(document, list) else [document], identity,
                                   reviewers=server.authenticator.reviewers is not None)
        except ForbiddenError as exc:
            return JSONResponse({"error": str(exc)}, 403)
        except ConfigError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        check_only = request.query_params.get("check_only", "").lower() in ("1", "true", "yes")
        return await _answer(
            lambda: {"feedback": feedback.record_feedback(server.link.get(), items, check_only=check_only,
                                                          written_by=identity.written_by)},
            status_code=200 if check_only else 201,
        )

    async def who_am_i(request: Request) -> JSONResponse:
        """Who the server takes the caller for: ``{"role": "reviewer"|"admin"|"open", "author": name|null}``."""
        return JSONResponse(identity_of(request.scope).to_dict())

    async def feedback_conflicts(request: Request) -> JSONResponse:
        from tracemill.collector.feedback.conflicts import list_conflicts

        trace_id = request.query_params.get("trace_id") or None
        return await _answer(lambda: {"conflicts": list_conflicts(server.link.get(), trace_id=trace_id)})

    async def flags(request: Request) -> JSONResponse:
        keys = ("trace_id", "detector", "category", "severity", "kind")
        return await _listing(server, request, "flags", feedback.list_flags, keys)

    return [
        Route("/api/identity", who_am_i, methods=["GET"]),
        Route("/api/feedback", feedback_list, methods=["GET"]),
        Route("/api/feedback", feedback_write, methods=["POST"]),
        Route("/api/feedback/conflicts", feedback_conflicts, methods=["GET"]),
        Route("/api/flags", flags, methods=["GET"]),
    ]


def _work_routes(server: ServerHost) -> list[Route]:
    """Long work done in the server, which owns the store: dataset exports and mining."""

    async def exports(request: Request) -> JSONResponse:
        """A dataset as JSON: ``{"manifest": {...}, "train": [rows], "eval": [rows]}`` (see tracemill.trainer)."""
        from tracemill.trainer.assemble import BuildOptions
        from tracemill.trainer.export import build

        query = request.query_params
        try:
            eval_fraction = _float(query.get("eval_fraction", "0.1"), "eval_fraction")
            seed = _int(query.get("seed", "0"), "seed")
        except ConfigError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        options = BuildOptions(include_unlabelled=query.get("include_unlabelled", "").lower() in ("1", "true", "yes"))

        def produce() -> dict[str, Any]:
            train, held_out, manifest = build(
                request.path_params["kind"], store=server.link.get(), resolve=query.get("resolve") or None,
                since=query.get("since") or None, eval_fraction=eval_fraction, seed=seed, options=options,
            )
            return {"manifest": manifest, "train": train, "eval": held_out}

        return await _answer(produce)

    async def miner_latest(request: Request) -> JSONResponse:
        """The latest labelled miner run: its quality next to the rules' and the detectors' calibration table."""
        from tracemill.miner.quality.miner_runs import latest_run

        return await _answer(lambda: {"run": latest_run(server.link.get())})

    async def mine(request: Request) -> JSONResponse:
        """Run the miner in the server (which owns the store): ``{"since": ..., "remine": false}``."""
        options, refused = await _json_body(request, advice="send only since and remine", empty=b"{}")
        if refused is not None:
            return refused
        if not isinstance(options, dict) or set(options) - {"since", "remine"}:
            return JSONResponse({"error": "the body is a JSON object with optional keys since and remine"}, 400)
        from tracemill.deps import require
        from tracemill.errors import MissingDependencyError

        try:
            require("sklearn", extra="miner", feature="Mining in the server")
        except MissingDependencyError as exc:
            return JSONResponse({"error": str(exc)}, 501)

        def run() -> dict[str, Any]:
            from tracemill.miner import mine as mine_store

            result = mine_store(server.link.get(), since=options.get("since"), remine=bool(options.get("remine")))
            return result.to_dict()

        return await _answer(run)

    return [
        Route("/api/exports/{kind}", exports, methods=["GET"]),
        Route("/api/mine", mine, methods=["POST"]),
        Route("/api/miner/latest", miner_latest, methods=["GET"]),
    ]


def _eval_routes(server: ServerHost) -> list[Route]:
    """Eval suites and runs (``tracemill eval list`` while the server owns the store)."""

    async def evals(request: Request) -> JSONResponse:
        from tracemill.trainer.evals.tables import listing

        query = request.query_params
        try:
            limit = _int(query.get("limit", "100"), "limit")
        except ConfigError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return await _answer(lambda: listing(server.link.get(), suite=query.get("suite") or None, limit=limit))

    return [Route("/api/evals", evals, methods=["GET"])]


async def _listing(
    server: ServerHost, request: Request, name: str, fetch: Callable[..., Any], keys: tuple[str, ...]
) -> JSONResponse:
    """``{name: fetch(store, limit, offset, **filters)}`` with the filters named by ``keys`` from the query."""
    query = request.query_params
    try:
        filters = {**_page(query), **{key: query.get(key) or None for key in keys}}
    except ConfigError as exc:
        return JSONResponse({"error": str(exc)}, 400)
    return await _answer(lambda: {name: fetch(server.link.get(), **filters)})


async def _answer(produce: Callable[[], Any], *, status_code: int = 200) -> JSONResponse:
    try:
        return JSONResponse(await run_in_threadpool(produce), status_code)
    except NotFoundError as exc:  # trace or span: not a ConfigError, so the order of these clauses does not matter
        return JSONResponse({"error": str(exc)}, 404)
    except ConfigError as exc:
        return JSONResponse({"error": str(exc)}, 400)
    except StoreError as exc:
        return JSONResponse({"error": str(exc)}, 503, headers={"Retry-After": "2"})


async def _json_body(request: Request, *, advice: str, empty: bytes = b"") -> tuple[Any, JSONResponse | None]:
    """The body parsed as JSON (``empty`` stands for no body), or the answer refusing it: 413 past the limit
    (``advice`` says what to send instead), 400 when it is not JSON."""
    try:
        body = await read_bounded_body(request, MAX_API_BODY_BYTES, advice=advice)
    except PayloadTooLargeError as exc:
        return None, JSONResponse({"error": str(exc)}, 413)
    try:
        return loads_strict(body or empty), None
    except ConfigError as exc:
        return None, JSONResponse({"error": str(exc)}, 400)


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number (got {raw!r})") from None


def _float(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number (got {raw!r})") from None


def _page(query: Any) -> dict[str, int]:
    return {"limit": _int(query.get("limit", "100"), "limit"), "offset": _int(query.get("offset", "0"), "offset")}
