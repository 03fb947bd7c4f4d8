"""Bearer-token check in front of every route of the server.

A server bound to anything but loopback must not take spans or answer queries from whoever can
reach the port, so when a token is configured every request needs ``Authorization: Bearer
<token>`` (the scheme in any case, RFC 7235). The comparison is constant-time. A refused OTLP request gets its 401 as a
``google.rpc.Status`` in its own encoding, like every other OTLP error.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from tracemill import config
from tracemill.collector.ingest.otlp import PROTOBUF, status_body

__all__ = ["BearerTokenMiddleware"]

_UNAUTHENTICATED = 16  # google.rpc.Code


class BearerTokenMiddleware:
    """Refuse HTTP requests that lack ``Authorization: Bearer <token>`` with 401."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        if not token:
            raise ValueError("BearerTokenMiddleware needs a non-empty token")
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"")
        scheme, _, credentials = given.strip().partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._expected):
            await self.app(scope, receive, send)
            return
        message = (
            "this server requires a bearer token: send 'Authorization: Bearer <token>' "
            f"(tracemill commands read it from --token or {config.TOKEN.name})"
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
