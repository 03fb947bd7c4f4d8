"""The review UI's Evals pages: suites and runs, and the comparison of two runs case by case.

Plain functions from the store and the query string to a template context, like :mod:`tracemill.ui.pages`; the
comparison is the same one ``tracemill eval compare`` computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tracemill.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store
    from tracemill.ui.host import UiHost

__all__ = ["comparison_context", "eval_routes", "evals_context"]


def evals_context(store: Store) -> dict[str, Any]:
    from tracemill.trainer.evals.tables import list_runs, list_suites

    return {"suites": list_suites(store), "runs": list_runs(store, limit=200)}


def comparison_context(store: Store, query: Mapping[str, str]) -> dict[str, Any]:
    from tracemill.trainer.evals.compare import compare_runs

    baseline, candidate = query.get("baseline"), query.get("candidate")
    if not baseline or not candidate:
        raise ConfigError("choose a baseline run and a candidate run to compare")
    try:
        alpha = float(query.get("alpha") or 0.05)
    except ValueError:
        raise ConfigError(f"alpha must be a number between 0 and 1 (got {query.get('alpha')!r})") from None
    return {"comparison": compare_runs(store, baseline, candidate, alpha=alpha)}


def eval_routes(server: UiHost, render: Any, page: Any) -> list[Route]:
    """``/evals`` and ``/evals/compare`` under the UI's mount, rendered and guarded like its other pages."""

    async def evals_page(request: Request) -> Response:
        return await page(lambda: render("evals.html", evals_context(server.link.get()), request=request), request)

    async def compare_page(request: Request) -> Response:
        def produce() -> Response:
            try:
                context = comparison_context(server.link.get(), request.query_params)
            except NotFoundError as exc:  # a run id that is not in the store
                return render("error.html", {"title": "Not found", "message": str(exc)}, 404, request=request)
            return render("eval_compare.html", context, request=request)

        return await page(produce, request)

    return [Route("/evals", evals_page, methods=["GET"]), Route("/evals/compare", compare_page, methods=["GET"])]
