"""The review UI's guard: Content-Security-Policy, the token cookie, and cross-site request checks.

A browser cannot send ``Authorization: Bearer`` on a page load, so when the server has tokens the
UI asks for one once (``/ui/login``) and keeps a server-side session id in a cookie that is HttpOnly
(page scripts never see it) and SameSite=Strict (other sites' requests do not carry it); the session
expires and logout revokes it (:mod:`tracemill.ui.sessions`). This middleware sits in front of the
bearer check: a request with a live session's cookie and no Authorization header carries the
session's identity, which the bearer check and the routes read, so the API and the UI share one
notion of who is writing.

State-changing requests to ``/api/`` and ``/ui/`` are refused (403) when their ``Origin`` names
another site, and a cookie-authenticated one must be a same-origin ``application/json`` request
(which a cross-site form cannot send). Every ``/ui/`` response carries a policy that forbids
inline script, so escaped trace content could not run even if escaping were ever missed.
"""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracemill.collector.feedback.reviewers import IDENTITY_KEY, PUBLIC_KEY

if TYPE_CHECKING:
    from tracemill.ui.sessions import SessionStore

__all__ = ["CONTENT_SECURITY_POLICY", "COOKIE_NAME", "SESSION_KEY", "UiGuardMiddleware"]

COOKIE_NAME = "tracemill_session"
SESSION_KEY = "tracemill.session_id"
"""Scope key of the session id a request was authenticated by (logout revokes it)."""
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_PUBLIC_PREFIXES = ("/ui/login", "/ui/static/")
_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class UiGuardMiddleware:
    """Cookie → bearer header, login redirect, Origin/content-type checks, security headers on /ui/."""

    def __init__(self, app: ASGIApp, *, sessions: SessionStore | None) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        headers = list(scope.get("headers") or [])
        lookup = dict(headers)
        is_ui = path == "/ui" or path.startswith("/ui/")
        guarded = is_ui or path.startswith("/api/")
        by_cookie = False
        scope_extra: dict[str, object] = {}
        if self.sessions is not None and b"authorization" not in lookup:
            session_id = _cookie(lookup.get(b"cookie", b""))
            session = self.sessions.get(session_id) if session_id else None
            if session is not None:
                by_cookie = True
                scope_extra = {IDENTITY_KEY: session.identity, SESSION_KEY: session_id}
            elif path.startswith(_PUBLIC_PREFIXES):
                scope_extra = {PUBLIC_KEY: True}
            elif is_ui and method in _SAFE_METHODS:
                query = scope.get("query_string", b"").decode("latin-1")
                target = path + (f"?{query}" if query else "")
                await _redirect(send, f"/ui/login?next={quote(target, safe='')}")
                return
        if guarded and method not in _SAFE_METHODS:
            problem = _cross_site_problem(lookup, by_cookie=by_cookie, json_required=by_cookie and not is_ui)
            if problem:
                await _refuse(send, problem)
                return
        scope = {**scope, **scope_extra, "headers": headers}
        if not is_ui:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in _SECURITY_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)



def _cookie(raw: bytes) -> str | None:
    """The session id of the Cookie header, if it has one."""
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:  # a malformed Cookie header is no cookie
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel is not None else None


def _cross_site_problem(headers: dict[bytes, bytes], *, by_cookie: bool, json_required: bool) -> str | None:
    """Why a state-changing request looks cross-site, or None when it does not."""
    origin = headers.get(b"origin", b"").decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1").lower()
    if origin:
        if origin == "null" or urlsplit(origin).netloc.lower() != host:
            return f"cross-site request refused: Origin {origin!r} is not this server ({host})"
    elif by_cookie:
        fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
        if fetch_site not in ("same-origin", "none"):
            return "cross-site request refused: a request authenticated by the UI cookie must carry its Origin"
    if json_required:
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            return "a write authenticated by the UI cookie must be sent as application/json"
    return None


async def _redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"),
                            *_SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": b""})


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
