"""Refuse what a web page could make a browser send to the server: cross-site writes and DNS rebinding.

A server on 127.0.0.1 with no token is reachable by any page the user visits. Two checks close that:

- ``Host``: a page on ``evil.example`` whose name the attacker re-points at 127.0.0.1 talks to the
  server with ``Host: evil.example`` and, being same-origin for the browser, could read every trace.
  Only the names the server is meant to be reached by pass: the bound address (for a loopback bind
  also ``localhost``, ``127.0.0.1``, ``[::1]``; for a wildcard bind any IP literal, which no rebinding
  attack can produce) and the configured names (the ``allowed_hosts`` setting).
- Writes (any method but GET, HEAD, OPTIONS): a browser adds ``Origin`` to them; one that is not the
  server's own origin (``Origin`` host and port equal to ``Host``) is refused with 403, as is
  ``Sec-Fetch-Site: cross-site``. API writes must also be ``application/json`` (415 otherwise): the
  content types a page may send cross-site without asking first (``text/plain``, forms) never pass.
  OTLP clients send protobuf or JSON without ``Origin`` and are unaffected; the receiver checks its
  own content types.

Same-origin pages (the review UI under ``/ui/``) send their own origin and JSON, and pass.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from tracemill import config

__all__ = ["RequestGuardMiddleware", "allowed_host_names"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
OTLP_PATH = "/v1/traces"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _host_name(host: str) -> str:
    """``name`` of ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``, lowercase, without a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def allowed_host_names(bind_host: str, configured: Iterable[str] = ()) -> tuple[frozenset[str], bool]:
    """The host names requests may name, and whether any IP literal passes (a wildcard bind)."""
    bind = _host_name(bind_host) if bind_host not in _WILDCARD_BINDS else bind_host
    names = {_host_name(name) for name in configured if name.strip()}
    wildcard = bind in _WILDCARD_BINDS
    if not wildcard:
        names.add(bind)
    from tracemill.collector.server.settings import is_loopback

    if wildcard or is_loopback(bind):
        names.update(LOOPBACK_HOSTS)
    return frozenset(names), wildcard


class RequestGuardMiddleware:
    """403 for a foreign ``Host`` or a cross-site write, 415 for an API write that is not JSON."""

    def __init__(self, app: ASGIApp, *, bind_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        configured = tuple(allowed_hosts)
        self._any_host = "*" in configured
        self._names, self._any_ip = allowed_host_names(bind_host, (h for h in configured if h != "*"))
        self._suffixes = tuple(name[1:] for name in self._names if name.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._check(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        body = json.dumps({"error": message}).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})

    def _check(self, scope: Scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        if not self._host_allowed(host):
            return 403, (
                f"this server does not answer to Host {host!r}: reach it by its address, or add the name to "
                f"{config.ALLOWED_HOSTS.name} (comma-separated) if it is meant to be reached that way"
            )
        if scope.get("method", "GET").upper() in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, host, scope.get("scheme", "http")):
            return 403, (
                f"cross-site write refused: a request from origin {origin!r} may not change this server's data; "
                "send it from the server's own pages or without a browser"
            )
        if origin is None and headers.get("sec-fetch-site", "").lower() == "cross-site":
            return 403, "cross-site write refused: the browser marked this request as cross-site"
        path = scope.get("path", "")
        if path != OTLP_PATH:
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            if (content_type or has_body) and not _is_json(content_type):
                return 415, (
                    f"the API takes JSON: send 'Content-Type: application/json' "
                    f"(got {content_type or 'no content type'!r})"
                )
        return None

    def _host_allowed(self, host: str) -> bool:
        if self._any_host:
            return True
        if not host:
            return False
        name = _host_name(host)
        if name in self._names or (self._any_ip and _is_ip(name)):
            return True
        return any(name.endswith(suffix) for suffix in self._suffixes)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (content_type.startswith("application/") and
                                                  content_type.endswith("+json"))


def _same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether ``Origin`` names this server as the request reached it (``null`` never does)."""
    origin_scheme, sep, netloc = origin.strip().lower().partition("://")
    if not sep or origin_scheme not in ("http", "https") or "/" in netloc:
        return False
    default = {"http": ":80", "https": ":443"}
    host = host.strip().lower()

    def with_port(value: str, value_scheme: str) -> str:
        bracket = value.rfind("]")
        return value if ":" in value[bracket + 1:] else value + default[value_scheme]

    return with_port(netloc, origin_scheme) == with_port(host, scheme if scheme in default else "http")
