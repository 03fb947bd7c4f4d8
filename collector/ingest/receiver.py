"""The OTLP/HTTP trace receiver: ``POST /v1/traces``, answered as the OTLP specification says.

- 200 once the request's spans are durable in the spool, with ``partial_success`` counting the
  spans that were rejected (invalid ids);
- 400 for a body that cannot be decoded, 413 over the size limit, 415 for a content type or
  encoding OTLP does not define: each with a ``google.rpc.Status`` message saying what was wrong;
- 429 (store healthy, writer behind) or 503 (store failing) with ``Retry-After`` once the spool
  is at its bound, and 429 when other requests hold the receiver's bound on bytes in flight
  (:mod:`tracemill.collector.ingest.budget`) for longer than ``inflight_wait_s``: the OTLP exporters retry those.

Responses use the request's encoding (protobuf or JSON). Decoding and the spool commit run in a
worker thread, so a large body or an fsync never stalls the event loop, and a bad request only
ever costs its own thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from tracemill.collector.ingest.budget import ByteBudget
from tracemill.collector.ingest.http_body import read_bounded_body
from tracemill.collector.ingest.otlp import (
    JSON,
    PROTOBUF,
    Encoding,
    UnsupportedMediaTypeError,
    decode_request,
    media_kind,
    status_body,
)
from tracemill.collector.ingest.spool import Spool, SpoolError, SpoolFullError
from tracemill.collector.ingest.writer import SpoolWriter
from tracemill.errors import PayloadError, PayloadTooLargeError

__all__ = ["TraceReceiver"]

logger = logging.getLogger(__name__)

# google.rpc.Code values used in error bodies.
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_INTERNAL = 13
_UNAVAILABLE = 14

_MEDIA_TYPE = {PROTOBUF: "application/x-protobuf", JSON: "application/json"}
_DRAIN_LIMIT = 64 << 20  # bytes of an oversized body read and dropped before the connection is cut


def _error(
    encoding: Encoding, http_status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = status_body(encoding, code, message)
    return Response(body, http_status, headers=headers, media_type=_MEDIA_TYPE[encoding])


class TraceReceiver:
    """The ``/v1/traces`` endpoint over a spool and its writer."""

    def __init__(
        self,
        spool: Spool,
        writer: SpoolWriter,
        *,
        max_request_bytes: int,
        max_inflight_bytes: int | None = None,
        inflight_wait_s: float = 5.0,
        on_accepted: Callable[[bytes], None] | None = None,
    ) -> None:
        self._spool = spool
        self._writer = writer
        self.max_request_bytes = max_request_bytes
        # Default: room for two requests of the largest size at once (and many more small ones).
        self._budget = ByteBudget(max_inflight_bytes or 2 * max_request_bytes)
        self._inflight_wait_s = inflight_wait_s
        self._on_accepted = on_accepted
        self._counts_lock = threading.Lock()
        self._counts = {
            "accepted_requests": 0,
            "accepted_spans": 0,
            "rejected_spans": 0,
            "refused_requests": 0,
            "backpressure_responses": 0,
            "inflight_waits_refused": 0,
        }

    def _count(self, **increments: int) -> None:
        with self._counts_lock:
            for name, value in increments.items():
                self._counts[name] += value

    async def handle(self, request: Request) -> Response:
        """The Starlette endpoint."""
        content_type = request.headers.get("content-type")
        try:
            encoding = media_kind(content_type)
        except UnsupportedMediaTypeError as exc:
            self._count(refused_requests=1)
            return _error(JSON, 415, _INVALID_ARGUMENT, str(exc))
        async with self._budget.hold(self._reservation(request), wait_s=self._inflight_wait_s) as granted:
            if not granted:
                self._count(backpressure_responses=1, inflight_waits_refused=1)
                return _error(
                    encoding, 429, _RESOURCE_EXHAUSTED,
                    f"the collector is decoding {self._budget.used} bytes of other requests, its bound for requests "
                    "in flight; retry after 1s",
                    headers={"Retry-After": "1"},
                )
            try:
                body = await read_bounded_body(
                    request, self.max_request_bytes, drain_bytes=_DRAIN_LIMIT, advice="send smaller batches"
                )
            except PayloadTooLargeError as exc:
                self._count(refused_requests=1)
                return _error(encoding, 413, _RESOURCE_EXHAUSTED, str(exc))
            except ClientDisconnect:
                return Response(status_code=400)
            return await run_in_threadpool(
                self._accept, body, encoding, content_type, request.headers.get("content-encoding")
            )

    def _reservation(self, request: Request) -> int:
        """The bytes a request will hold: its declared length, or the limit when it may decompress or
        declares none."""
        declared = request.headers.get("content-length", "")
        encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
        if declared.isdigit() and encoding == "identity":
            return min(int(declared), self.max_request_bytes)
        return self.max_request_bytes

    def _accept(
        self, body: bytes, encoding: Encoding, content_type: str | None, content_encoding: str | None
    ) -> Response:
        try:
            decoded = decode_request(
                body, content_type=content_type, content_encoding=content_encoding, max_bytes=self.max_request_bytes
            )
        except UnsupportedMediaTypeError as exc:
            self._count(refused_requests=1)
            return _error(encoding, 415, _INVALID_ARGUMENT, str(exc))
        except PayloadTooLargeError as exc:
            self._count(refused_requests=1)
            return _error(encoding, 413, _RESOURCE_EXHAUSTED, str(exc))
        except PayloadError as exc:
            self._count(refused_requests=1)
            return _error(encoding, 400, _INVALID_ARGUMENT, str(exc))
        except Exception:  # a decoder bug must not become a 500 page nor affect other requests
            logger.exception("decoding an OTLP request failed unexpectedly")
            self._count(refused_requests=1)
            return _error(encoding, 400, _INVALID_ARGUMENT, "the request could not be decoded")
        if decoded.accepted_spans:
            try:
                self._spool.append(decoded.payload, decoded.accepted_spans)
            except SpoolFullError as exc:
                return self._backpressure(encoding, str(exc))
            except SpoolError as exc:
                logger.error("cannot spool a request: %s", exc)
                return _error(encoding, 503, _UNAVAILABLE, f"the collector cannot store spans right now: {exc}",
                              headers={"Retry-After": "5"})
            self._writer.wake()
            if self._on_accepted is not None:
                self._on_accepted(decoded.payload)
        self._count(
            accepted_requests=1, accepted_spans=decoded.accepted_spans, rejected_spans=decoded.rejected_spans
        )
        return Response(
            _success_body(encoding, decoded.rejected_spans, decoded.rejection_message),
            200,
            media_type=_MEDIA_TYPE[encoding],
        )

    def _backpressure(self, encoding: Encoding, detail: str) -> Response:
        self._count(backpressure_responses=1)
        retry_after = str(self._writer.retry_after_s())
        if self._writer.healthy:
            return _error(
                encoding, 429, _RESOURCE_EXHAUSTED,
                f"the collector is behind ({detail}); retry after {retry_after}s",
                headers={"Retry-After": retry_after},
            )
        return _error(
            encoding, 503, _UNAVAILABLE,
            f"the store is unavailable and the spool is full ({detail}); retry after {retry_after}s. "
            f"Store error: {self._writer.last_error}",
            headers={"Retry-After": retry_after},
        )

    def status(self) -> dict[str, Any]:
        with self._counts_lock:
            return {
                **self._counts,
                "max_request_bytes": self.max_request_bytes,
                "max_inflight_bytes": self._budget.limit,
                "inflight_bytes": self._budget.used,
                "peak_inflight_bytes": self._budget.peak,
            }


def _success_body(encoding: Encoding, rejected: int, message: str) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding == PROTOBUF:
        return response.SerializeToString()
    from google.protobuf import json_format

    return json.dumps(json_format.MessageToDict(response)).encode()
