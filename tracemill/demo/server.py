"""An OpenAI-compatible Chat Completions endpoint on 127.0.0.1, answered by the scripted model.

The demo agent talks to it with the real ``openai`` client over HTTP, so the OpenAI integration
traces exactly what it would trace against a hosted model: the request's messages and tool
definitions, the reply's tool calls, token usage. Standard library only (``http.server``), one
thread per connection.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tracemill.demo.model import ScriptedModel
from tracemill.tracer.messages import to_genai_messages

__all__ = ["ModelServer"]


class ModelServer:
    """``with ModelServer(model) as server: openai.OpenAI(base_url=server.base_url, api_key="offline")``."""

    def __init__(self, model: ScriptedModel, *, model_name: str = "travel-desk-scripted-1") -> None:
        self.model = model
        self.model_name = model_name
        self.requests = 0
        self._count_lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="demo-model-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """One Chat Completions answer for a request body."""
        with self._count_lock:
            self.requests += 1
            number = self.requests
        messages = body.get("messages") or []
        action = self.model.decide(to_genai_messages(messages))
        message: dict[str, Any] = {"role": "assistant", "content": action.content}
        if action.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{number}_{i}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(arguments)}}
                for i, (name, arguments) in enumerate(action.tool_calls)]
        prompt_tokens = sum(len(json.dumps(m)) for m in messages) // 4 + len(json.dumps(body.get("tools") or [])) // 4
        completion_tokens = max(1, len(json.dumps(message)) // 4)
        return {
            "id": f"chatcmpl-demo-{number}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or self.model_name,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if action.tool_calls else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                except ValueError:
                    return self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
                if body.get("stream"):
                    return self._send(400, {"error": {"message": "the scripted model does not stream",
                                                      "type": "invalid_request_error"}})
                self._send(200, outer.complete(body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
