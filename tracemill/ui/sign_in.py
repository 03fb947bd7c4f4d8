"""Signing in to the review UI and out: a token in, a server-side session cookie out (see sessions.py).

Signing in and out are same-origin JSON requests sent by the sign-in page's script; the request guard
refuses cross-site ones before they get here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tracemill import config
from tracemill.collector.feedback.strict_json import loads_strict
from tracemill.errors import ConfigError
from tracemill.ui.security import COOKIE_NAME, SESSION_KEY

if TYPE_CHECKING:
    from tracemill.ui.host import UiHost

__all__ = ["local_target", "sign_in_handlers"]

_MAX_LOGIN_BYTES = 4096
Handler = Callable[[Request], Awaitable[Response]]


def sign_in_handlers(server: UiHost) -> tuple[Handler, Handler]:
    """``POST /ui/login`` and ``POST /ui/logout`` of ``server``."""
    auth = server.authenticator.required
    sessions = server.sessions

    async def login(request: Request) -> Response:
        """``{"token", "next"}`` as JSON from the sign-in page's script: a session cookie, and where to go next."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_LOGIN_BYTES:
                return JSONResponse({"error": "the sign-in request is too large"}, 413)
        try:
            form = loads_strict(body, what="the sign-in request")
        except ConfigError:
            form = None
        if not isinstance(form, dict) or not isinstance(form.get("token", ""), str):
            return JSONResponse({"error": 'send {"token": "...", "next": "/ui/..."} as JSON'}, 400)
        target = local_target(form.get("next") if isinstance(form.get("next"), str) else None)
        response = JSONResponse({"next": target})
        if sessions is None:
            return response
        token = form.get("token", "").encode()
        identity = server.authenticator.authenticate(token)
        if identity is None:
            return JSONResponse({"error": f"That token is not this server's admin token ({config.TOKEN.name}) nor "
                                          f"a reviewer's ({config.REVIEWERS.name})."}, 401)
        session_id, _ = sessions.open(identity, server.authenticator.digest(token))
        response.set_cookie(COOKIE_NAME, session_id, max_age=int(sessions.ttl_s), httponly=True, samesite="strict",
                            path="/", secure=request.url.scheme == "https")
        return response

    async def logout(request: Request) -> Response:
        """End the session: its id stops working at once, wherever the cookie was copied."""
        session_id = request.scope.get(SESSION_KEY)
        if sessions is not None and isinstance(session_id, str):
            sessions.revoke(session_id)
        response = JSONResponse({"next": "/ui/login" if auth else "/ui/"})
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    return login, logout


def local_target(target: str | None) -> str:
    """A redirect target inside the UI only (never another site: '//evil' and 'http:' are refused)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"
