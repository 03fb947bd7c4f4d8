"""A real HTTP server that speaks the OpenAI Chat Completions and Responses APIs from a script.

A Starlette app served by uvicorn on 127.0.0.1 (a free port) in a background thread. Tests,
examples and the benchmark queue replies with :meth:`OpenAIServer.reply` — text, tool calls,
HTTP errors, delays — and the real ``openai`` client talks to it over HTTP, streaming included
(SSE with tool-call deltas and a usage chunk when ``stream_options.include_usage`` is set).
An empty script answers :attr:`OpenAIServer.default` (``"ok"``). Every request body is kept in
:attr:`OpenAIServer.requests`.

``python tests/integrations/openai_server.py --text "..."`` serves the same API from a process of
its own (the benchmark uses it) and prints its base URL once it listens.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class ToolCallReply:
    name: str
    arguments: dict[str, Any]
    id: str


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``status`` other than 200 answers with an OpenAI-shaped error body."""

    text: str | None = "ok"
    tool_calls: Sequence[ToolCallReply] = ()
    status: int = 200
    error_message: str = "scripted error"
    delay_s: float = 0.0  # before the response starts
    chunk_delay_s: float = 0.0  # between streamed chunks
    input_tokens: int = 11
    output_tokens: int = 7
    model: str | None = None  # defaults to the requested model
    fail_after_chunks: int | None = None  # a streamed chat answer sends an error event after this many text chunks


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _pieces(text: str) -> list[str]:
    """Split text into a few streamed pieces (on spaces, keeping them)."""
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


class OpenAIServer:
    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.default = Reply()  # the answer when the script is empty
        self.requests: list[dict[str, Any]] = []
        self._counter = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/deployments/{deployment}/chat/completions", self._chat, methods=["POST"]),  # Azure paths
            Route("/v1/responses", self._responses, methods=["POST"]),
        ])
        self.app = app

    # --- control ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply(self, text: str | None = "ok", *, tool_calls: Sequence[tuple[str, dict[str, Any]] | ToolCallReply] = (),
              **options: Any) -> None:
        """Queue the next answer; ``tool_calls`` are ``(name, arguments)`` pairs or :class:`ToolCallReply`."""
        calls = [c if isinstance(c, ToolCallReply) else self._tool_call(*c) for c in tool_calls]
        self.script.append(Reply(text=text, tool_calls=calls, **options))

    def _tool_call(self, name: str, arguments: dict[str, Any]) -> ToolCallReply:
        self._counter += 1
        return ToolCallReply(name=name, arguments=arguments, id=f"call_{self._counter}")

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self._counter = 0

    def start(self) -> OpenAIServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on small responses
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off", ws="none",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="openai-test-server")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the local OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- endpoints --------------------------------------------------------------------------

    async def _next(self, request: Request) -> tuple[dict[str, Any], Reply]:
        body = await request.json()
        self.requests.append(body)
        reply = self.script.popleft() if self.script else self.default
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return body, reply

    @staticmethod
    def _error(reply: Reply) -> Response:
        kind = {429: "rate_limit_exceeded", 401: "invalid_api_key", 400: "invalid_request_error"}.get(
            reply.status, "server_error")
        return JSONResponse({"error": {"message": reply.error_message, "type": kind, "code": kind}},
                            status_code=reply.status)

    async def _chat(self, request: Request) -> Response:
        body, reply = await self._next(request)
        if reply.status != 200:
            return self._error(reply)
        model = reply.model or body.get("model", "unknown")
        completion_id = f"chatcmpl-{len(self.requests)}"
        finish = "tool_calls" if reply.tool_calls else "stop"
        usage = {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                 "total_tokens": reply.input_tokens + reply.output_tokens}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if reply.tool_calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                    for c in reply.tool_calls]
            return JSONResponse({
                "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": usage,
            })
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
            return _sse({"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                         "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                         **extra})

        async def events() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            for count, piece in enumerate(_pieces(reply.text or "") if reply.text else ()):
                if count == reply.fail_after_chunks:
                    yield _sse({"error": {"message": reply.error_message, "type": "server_error"}})
                    return
                if reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
                yield chunk({"content": piece})
            for index, call in enumerate(reply.tool_calls):
                arguments = json.dumps(call.arguments)
                half = len(arguments) // 2
                yield chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                             "function": {"name": call.name, "arguments": arguments[:half]}}]})
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]})
            yield chunk({}, finish)
            if include_usage:
                yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                            "model": model, "choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _responses(self, request: Request) -> Response:
        body, reply = await self._next(request)
        if reply.status != 200:
            return self._error(reply)
        model = reply.model or body.get("model", "unknown")
        response_id = f"resp_{len(self.requests)}"
        output: list[dict[str, Any]] = []
        if reply.text:
            output.append({"id": f"msg_{len(self.requests)}", "type": "message", "role": "assistant",
                           "status": "completed",
                           "content": [{"type": "output_text", "text": reply.text, "annotations": []}]})
        for call in reply.tool_calls:
            output.append({"id": f"fc_{call.id}", "type": "function_call", "call_id": call.id, "name": call.name,
                           "arguments": json.dumps(call.arguments), "status": "completed"})
        usage = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                 "total_tokens": reply.input_tokens + reply.output_tokens,
                 "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}

        def response(status: str, items: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
            return {"id": response_id, "object": "response", "created_at": time.time(), "model": model,
                    "status": status, "output": items, "parallel_tool_calls": True, "tool_choice": "auto",
                    "tools": body.get("tools", []), "usage": usage if with_usage else None, "error": None,
                    "incomplete_details": None, "instructions": body.get("instructions")}

        if not body.get("stream"):
            return JSONResponse(response("completed", output, True))

        async def events() -> AsyncIterator[bytes]:
            sequence = 0

            def event(kind: str, **data: Any) -> bytes:
                nonlocal sequence
                sequence += 1
                return _sse({"type": kind, "sequence_number": sequence, **data}, event=kind)

            yield event("response.created", response=response("in_progress", [], False))
            for index, item in enumerate(output):
                if item["type"] == "message":
                    started = {**item, "status": "in_progress", "content": []}
                    yield event("response.output_item.added", output_index=index, item=started)
                    for piece in _pieces(reply.text or ""):
                        if reply.chunk_delay_s:
                            await asyncio.sleep(reply.chunk_delay_s)
                        yield event("response.output_text.delta", output_index=index, content_index=0,
                                    item_id=item["id"], delta=piece, logprobs=[])
                    yield event("response.output_item.done", output_index=index, item=item)
                else:
                    yield event("response.output_item.added", output_index=index,
                                item={**item, "arguments": "", "status": "in_progress"})
                    yield event("response.function_call_arguments.delta", output_index=index, item_id=item["id"],
                                delta=item["arguments"])
                    yield event("response.output_item.done", output_index=index, item=item)
            yield event("response.completed", response=response("completed", output, True))

        return StreamingResponse(events(), media_type="text/event-stream")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Serve the scripted OpenAI-compatible API until killed.")
    parser.add_argument("--text", default="ok", help="the answer to every request")
    parser.add_argument("--tool-call", action="store_true", help="also ask for one tool call in every answer")
    args = parser.parse_args(argv)
    server = OpenAIServer()
    server.default = Reply(text=args.text, tool_calls=[ToolCallReply("lookup", {"query": "weather"}, "call_1")]
                           if args.tool_call else ())
    server.start()
    server.requests = _Discard()  # a long-running server keeps no history
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: Any) -> None:
        pass


if __name__ == "__main__":
    main()
