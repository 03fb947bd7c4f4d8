"""Reading a request body under a byte limit: one reader for the OTLP receiver and the JSON API.

A client that sends too much gets a clear 413, never a server that holds an unbounded body in
memory. Up to ``drain_bytes`` more of an oversized body are read and dropped, so the client sees
the 413 instead of a connection reset; past that the connection is cut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracemill.errors import PayloadTooLargeError

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["read_bounded_body"]


async def read_bounded_body(request: Request, limit: int, *, drain_bytes: int = 0, advice: str) -> bytes:
    """The body, or :class:`PayloadTooLargeError` (whose message ends with ``advice``) once it passes ``limit``."""
    declared = request.headers.get("content-length", "")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > limit + drain_bytes:
            break
    if size > limit:
        shown = f"{declared} bytes" if declared.isdigit() else f"over {limit} bytes"
        raise PayloadTooLargeError(f"the request body is {shown}, over the limit of {limit} bytes; {advice}")
    return b"".join(chunks)
