"""The review UI's routes under ``/ui/``: the queue, a trace, queue navigation, the token login, static files.

Pages are rendered on the server with Jinja2 (autoescape on: trace content is always escaped);
queries and rendering run in worker threads, like the JSON API's. Writes do not come here: the
pages' script posts feedback to ``POST /api/feedback``, the same checked write path as the CLI's.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tracemill.collector.feedback.reviewers import identity_of
from tracemill.errors import ConfigError, SpanNotFoundError, StoreError, TraceNotFoundError
from tracemill.ui.sign_in import local_target as _local
from tracemill.ui.sign_in import sign_in_handlers

if TYPE_CHECKING:
    from jinja2 import Environment

    from tracemill.ui.host import UiHost

__all__ = ["ui_routes"]

_HERE = Path(__file__).parent


def environment() -> Environment:
    """The Jinja2 environment of the UI: templates from the package, HTML always escaped."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["qs"] = lambda items, **changes: urlencode(
        [(k, v) for k, v in items if k not in changes] + [(k, v) for k, v in changes.items() if v is not None])
    return env


def ui_routes(server: UiHost) -> list[Route | Mount]:
    """The routes to add to the server's app."""
    from tracemill.ui.eval_pages import eval_routes

    view = _View(environment(), server.authenticator.required)

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/", 307)

    return [
        Route("/ui", root, methods=["GET"]),
        Mount("/ui", routes=[
            *_review_routes(server, view),
            *eval_routes(server, view.render, view.page),
            *_sign_in_routes(server, view),
            Mount("/static", app=StaticFiles(directory=_HERE / "static"), name="ui-static"),
        ]),
    ]  # fmt: skip


class _View:
    """Renders the UI's templates, and turns the errors of the library into error pages."""

    def __init__(self, env: Environment, auth: bool) -> None:
        self.env = env
        self.auth = auth

    def render(self, name: str, context: dict[str, Any], status_code: int = 200, request: Request | None = None
               ) -> HTMLResponse:
        """The page, with who is signed in (``who``) when it answers a request."""
        who = identity_of(request.scope) if request is not None else None
        html = self.env.get_template(name).render(**context, auth=self.auth, who=who.to_dict() if who else None)
        return HTMLResponse(html, status_code, headers={"Cache-Control": "no-store"})

    async def page(self, produce: Any, request: Request) -> Response:
        render = self.render
        try:
            return await run_in_threadpool(produce)
        except (TraceNotFoundError, SpanNotFoundError) as exc:
            context = {"title": "Not found", "message": str(exc)}
            return await run_in_threadpool(render, "error.html", context, 404, request)
        except ConfigError as exc:
            context = {"title": "Bad request", "message": str(exc)}
            return await run_in_threadpool(render, "error.html", context, 400, request)
        except StoreError as exc:
            context = {"title": "Store unavailable", "message": str(exc)}
            return await run_in_threadpool(render, "error.html", context, 503, request)


def _review_routes(server: UiHost, view: _View) -> list[Route]:
    """The queue, a trace, one span's details, and the jump to a run's decisive step."""
    from tracemill.ui import pages

    render, page = view.render, view.page

    async def queue_page(request: Request) -> Response:
        def produce() -> Response:
            context = pages.queue_context(server.link.get(), request.query_params)
            return render("queue.html", context, request=request)

        return await page(produce, request)

    async def trace_page(request: Request) -> Response:
        def produce() -> Response:
            context = pages.trace_context(server.link.get(), request.path_params["trace_id"], request.query_params,
                                          rng=random.Random())
            return render("trace.html", context, request=request)

        return await page(produce, request)

    async def span_fragment(request: Request) -> Response:
        def produce() -> Response:
            params = request.path_params
            return render("span_fragment.html", pages.span_context(server.link.get(), params["trace_id"],
                                                                   params["span_id"]), request=request)

        return await page(produce, request)

    async def step(request: Request) -> Response:
        def produce() -> Response:
            target = pages.step_target(server.link.get(), request.query_params)
            return RedirectResponse(target, 303)

        return await page(produce, request)

    return [
        Route("/", queue_page, methods=["GET"]),
        Route("/traces/{trace_id}", trace_page, methods=["GET"]),
        Route("/traces/{trace_id}/spans/{span_id}", span_fragment, methods=["GET"]),
        Route("/step", step, methods=["GET"]),
    ]


def _sign_in_routes(server: UiHost, view: _View) -> list[Route]:
    """Sign in with the admin token or a reviewer's (a server-side session cookie), and sign out."""
    render = view.render

    async def login_form(request: Request) -> Response:
        return render("login.html", {"next": _local(request.query_params.get("next"))})

    login, logout = sign_in_handlers(server)

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]

