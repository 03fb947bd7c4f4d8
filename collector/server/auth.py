"""Bearer-token check in front of every route of the server.

A server bound to anything but loopback must not take spans or answer queries from whoever can
reach the port, so when a token is configured every request needs ``Authorization: Bearer
<token>`` (the scheme in any case, RFC 7235): the admin token or a reviewer's
(:class:`~tracemill.collector.feedback.reviewers.Authenticator`). The identity it stands for goes into the
request scope (:data:`IDENTITY_KEY`) for the routes. A request the review UI's guard already
authenticated by its session cookie, or marked public (the sign-in page), passes as it is. The
comparison is constant-time. A refused OTLP request gets its 401 as a ``google.rpc.Status`` in its
own encoding, like every other OTLP error.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from tracemill import config
from tracemill.collector.feedback.reviewers import IDENTITY_KEY, PUBLIC_KEY, identity_of
from tracemill.collector.ingest.otlp import PROTOBUF, status_body

if TYPE_CHECKING:
    from tracemill.collector.feedback.reviewers import Authenticator

__all__ = ["IDENTITY_KEY", "PUBLIC_KEY", "BearerTokenMiddleware", "identity_of"]

_UNAUTHENTICATED = 16  # google.rpc.Code


class BearerTokenMiddleware:
    """Refuse HTTP requests that lack ``Authorization: Bearer <token>`` with 401."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator) -> None:
        if not authenticator.required:
            raise ValueError("BearerTokenMiddleware needs an admin token or reviewers")
        self.app = app
        self._authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get(IDENTITY_KEY) is not None or scope.get(PUBLIC_KEY):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"")
        scheme, _, credentials = given.strip().partition(b" ")
        identity = self._authenticator.authenticate(credentials.strip()) if scheme.lower() == b"bearer" else None
        if identity is not None:
            await self.app({**scope, IDENTITY_KEY: identity}, receive, send)
            return
        message = (
            "this server requires a bearer token: send 'Authorization: Bearer <token>' "
            f"(tracemill commands read it from --token or {config.TOKEN.name}: the admin token or a reviewer's)"
            if not given
            else "the bearer token is wrong"
        )
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope.get("path") == "/v1/traces" and content_type in (b"application/x-protobuf", b"application/protobuf"):
            body = status_body(PROTOBUF, _UNAUTHENTICATED, message)
            media = b"application/x-protobuf"
        else:
            body = (
                json.dumps({"code": _UNAUTHENTICATED, "message": message}).encode()
                if scope.get("path") == "/v1/traces"
                else json.dumps({"error": message}).encode()
            )
            media = b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", media),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="tracemill"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
