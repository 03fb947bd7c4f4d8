"""The JSON API for configuration versions and rollouts (used by the CLI and by traced processes).

- ``GET /api/versions?agent=``: :func:`tracemill.miner.versions.versions_report`;
- ``GET /api/versions/diff?a=&b=``: :func:`tracemill.miner.versions.diff_versions`;
- ``GET /api/rollouts/NAME``: arms, test and state; ``GET /api/rollouts/NAME/state``: only ``{"state"}``, the
  cheap read every traced process makes (``running`` for a rollout the store does not know);
- ``POST /api/rollouts/NAME/halt|resume|promote``: a person's decision, ``{"reason": ...}`` optional.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from tracemill.collector.server.host import ServerHost

__all__ = ["version_routes"]


def version_routes(server: ServerHost) -> list[Route]:
    from tracemill.collector.server.api_routes import _answer, _json_body

    async def versions(request: Request) -> JSONResponse:
        from tracemill.miner.versions.report import versions_report

        agent = request.query_params.get("agent") or None
        return await _answer(lambda: versions_report(server.link.get(), agent=agent))

    async def diff(request: Request) -> JSONResponse:
        from tracemill.miner.versions.report import diff_versions

        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        if not a or not b:
            return JSONResponse({"error": "give both versions: ?a=OLD&b=NEW"}, 400)
        return await _answer(lambda: diff_versions(server.link.get(), a, b))

    async def status(request: Request) -> JSONResponse:
        from tracemill.miner.versions.rollouts import rollout_status

        name = request.path_params["name"]
        return await _answer(lambda: rollout_status(server.link.get(), name))

    async def state(request: Request) -> JSONResponse:
        from tracemill.miner.versions.rollouts import rollout_state

        name = request.path_params["name"]

        def read() -> dict[str, Any]:
            found = rollout_state(server.link.get(), name)
            return {"name": name, "state": found["state"] if found else "running"}

        return await _answer(read)

    async def act(request: Request) -> JSONResponse:
        from tracemill.miner.versions.rollouts import ACTIONS, set_rollout_state

        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ACTIONS:
            return JSONResponse({"error": f"action must be one of {', '.join(ACTIONS)} (got {action!r})"}, 404)
        body, refused = await _json_body(request, advice="send only a reason", empty=b"{}")
        if refused is not None:
            return refused
        reason = str(body.get("reason") or "") if isinstance(body, dict) else ""
        author = _author(request, body)
        return await _answer(lambda: set_rollout_state(server.link.get(), name, ACTIONS[action], reason=reason,
                                                       author=author))

    return [
        Route("/api/versions", versions, methods=["GET"]),
        Route("/api/versions/diff", diff, methods=["GET"]),
        Route("/api/rollouts/{name}", status, methods=["GET"]),
        Route("/api/rollouts/{name}/state", state, methods=["GET"]),
        Route("/api/rollouts/{name}/{action}", act, methods=["POST"]),
    ]


def _author(request: Request, body: Any) -> str:
    """Who halted, resumed or promoted: the authenticated reviewer (or the admin), else the body's author."""
    from tracemill.collector.feedback.reviewers import identity_of

    who = identity_of(request.scope)
    if who.written_by:
        return who.written_by
    return str(body.get("author") or "api") if isinstance(body, dict) else "api"
