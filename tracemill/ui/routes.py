"""The review UI's routes under ``/ui/``: the queue, a trace, queue navigation, the token login, static files.

Pages are rendered on the server with Jinja2 (autoescape on: trace content is always escaped);
queries and rendering run in worker threads, like the JSON API's. Writes do not come here: the
pages' script posts feedback to ``POST /api/feedback``, the same checked write path as the CLI's.
"""

from __future__ import annotations

import hmac
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tracemill import config
from tracemill.errors import ConfigError, SpanNotFoundError, StoreError, TraceNotFoundError
from tracemill.ui.security import COOKIE_NAME, cookie_value

if TYPE_CHECKING:
    from jinja2 import Environment

    from tracemill.ui.host import UiHost

__all__ = ["ui_routes"]

_HERE = Path(__file__).parent
_MAX_LOGIN_BYTES = 4096


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

    view = _View(environment(), server.settings.token)

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/", 307)

    return [
        Route("/ui", root, methods=["GET"]),
        Mount("/ui", routes=[
            *_review_routes(server, view),
            *eval_routes(server, view.render, view.page),
            *_sign_in_routes(view),
            Mount("/static", app=StaticFiles(directory=_HERE / "static"), name="ui-static"),
        ]),
    ]  # fmt: skip


class _View:
    """Renders the UI's templates, and turns the errors of the library into error pages."""

    def __init__(self, env: Environment, token: str | None) -> None:
        self.env = env
        self.token = token

    def render(self, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        html = self.env.get_template(name).render(**context, auth=bool(self.token))
        return HTMLResponse(html, status_code, headers={"Cache-Control": "no-store"})

    async def page(self, produce: Any) -> Response:
        render = self.render
        try:
            return await run_in_threadpool(produce)
        except (TraceNotFoundError, SpanNotFoundError) as exc:
            return await run_in_threadpool(render, "error.html", {"title": "Not found", "message": str(exc)}, 404)
        except ConfigError as exc:
            return await run_in_threadpool(render, "error.html", {"title": "Bad request", "message": str(exc)}, 400)
        except StoreError as exc:
            return await run_in_threadpool(
                render, "error.html", {"title": "Store unavailable", "message": str(exc)}, 503)


def _review_routes(server: UiHost, view: _View) -> list[Route]:
    """The queue, a trace, one span's details, and the jump to a run's decisive step."""
    from tracemill.ui import pages

    render, page = view.render, view.page

    async def queue_page(request: Request) -> Response:
        def produce() -> Response:
            context = pages.queue_context(server.link.get(), request.query_params)
            return render("queue.html", context)

        return await page(produce)

    async def trace_page(request: Request) -> Response:
        def produce() -> Response:
            context = pages.trace_context(server.link.get(), request.path_params["trace_id"], request.query_params,
                                          rng=random.Random())
            return render("trace.html", context)

        return await page(produce)

    async def span_fragment(request: Request) -> Response:
        def produce() -> Response:
            params = request.path_params
            return render("span_fragment.html", pages.span_context(server.link.get(), params["trace_id"],
                                                                   params["span_id"]))

        return await page(produce)

    async def step(request: Request) -> Response:
        def produce() -> Response:
            target = pages.step_target(server.link.get(), request.query_params)
            return RedirectResponse(target, 303)

        return await page(produce)

    return [
        Route("/", queue_page, methods=["GET"]),
        Route("/traces/{trace_id}", trace_page, methods=["GET"]),
        Route("/traces/{trace_id}/spans/{span_id}", span_fragment, methods=["GET"]),
        Route("/step", step, methods=["GET"]),
    ]


def _sign_in_routes(view: _View) -> list[Route]:
    """Sign in with the server's token (a cookie), and sign out."""
    render, token = view.render, view.token

    async def login_form(request: Request) -> Response:
        return render("login.html", {"next": _local(request.query_params.get("next"))})

    async def login(request: Request) -> Response:
        """``{"token", "next"}`` as JSON from the sign-in page's script: the cookie, and where to go next."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_LOGIN_BYTES:
                return JSONResponse({"error": "the sign-in request is too large"}, 413)
        try:
            form = json.loads(body)
        except ValueError:
            form = None
        if not isinstance(form, dict) or not isinstance(form.get("token", ""), str):
            return JSONResponse({"error": 'send {"token": "...", "next": "/ui/..."} as JSON'}, 400)
        target = _local(form.get("next") if isinstance(form.get("next"), str) else None)
        if token and not hmac.compare_digest(form.get("token", "").encode(), token.encode()):
            return JSONResponse({"error": f"That token does not match this server's {config.TOKEN.name}."}, 401)
        response = JSONResponse({"next": target})
        if token:
            response.set_cookie(COOKIE_NAME, cookie_value(token), httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
        return response

    async def logout(request: Request) -> Response:
        response = JSONResponse({"next": "/ui/login" if token else "/ui/"})
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]


def _local(target: str | None) -> str:
    """A redirect target inside the UI only (never another site: '//evil' and 'http:' are refused)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"
