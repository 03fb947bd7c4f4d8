"""Plumbing shared by the examples, kept out of them so each example shows only the agent.

- :func:`start_tracing`: with ``TRACEMILL_ENDPOINT`` or ``TRACEMILL_STORE`` set, spans go
  there (``tracemill serve``, or any OTel backend); otherwise they are kept in memory and
  :func:`print_trace` prints them as a tree when the example ends.
- :class:`ScriptedOpenAI`: a tiny OpenAI-compatible HTTP server (standard library only) that
  answers Chat Completions requests from a script, so the examples run offline. Set
  ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL`` for another compatible server) to use a real model.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracemill

_memory: InMemorySpanExporter | None = None


def start_tracing(service_name: str) -> None:
    global _memory
    if os.environ.get("TRACEMILL_ENDPOINT") or os.environ.get("TRACEMILL_STORE"):
        tracemill.init(service_name=service_name)
    else:
        _memory = InMemorySpanExporter()
        tracemill.init(service_name=service_name, processor=SimpleSpanProcessor(_memory))


_SHOWN = ("gen_ai.tool.call.id", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
          "gen_ai.response.finish_reasons", "tracemill.decision.choice", "tracemill.llm.delegated")


def print_trace() -> None:
    """Print the spans kept in memory as a tree (nothing to print when they were exported)."""
    tracemill.force_flush()
    if _memory is None:
        print("spans exported to", os.environ.get("TRACEMILL_ENDPOINT") or os.environ.get("TRACEMILL_STORE"))
        return
    spans = sorted(_memory.get_finished_spans(), key=lambda s: s.start_time or 0)
    children: dict[int | None, list[Any]] = {}
    ids = {s.context.span_id for s in spans}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in ids else None
        children.setdefault(parent, []).append(span)

    def show(span: Any, depth: int) -> None:
        notes = [f"{k.rsplit('.', 1)[-1]}={span.attributes[k]}" for k in _SHOWN if k in span.attributes]
        status = " ERROR" if span.status.status_code.name == "ERROR" else ""
        print(f"{'  ' * depth}{span.name}{status}" + (f"  ({', '.join(notes)})" if notes else ""))
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    print(f"--- {len(spans)} spans ---")
    for root in children.get(None, []):
        show(root, 0)


def real_model_configured() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY"))


class ScriptedOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 that replies from a script.

    Each script entry is ``{"content": "..."}`` or ``{"tool_calls": [(name, arguments), ...]}``;
    ``stream: true`` requests get the same answer as server-sent events.
    """

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.script = deque(script)
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
        entry = self.script.popleft() if self.script else {"content": "(the script has ended)"}
        calls = [{"id": f"call_{len(body['messages'])}_{i}", "type": "function",
                  "function": {"name": name, "arguments": json.dumps(arguments)}}
                 for i, (name, arguments) in enumerate(entry.get("tool_calls", ()))]
        return entry.get("content"), calls

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep the example's output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                content, calls = owner._answer(body)
                finish = "tool_calls" if calls else "stop"
                base = {"id": f"chatcmpl-{time.time_ns()}", "created": int(time.time()), "model": body["model"]}
                usage = {"prompt_tokens": 20 * len(body["messages"]), "completion_tokens": 10,
                         "total_tokens": 20 * len(body["messages"]) + 10}
                if not body.get("stream"):
                    message = {"role": "assistant", "content": content, **({"tool_calls": calls} if calls else {})}
                    payload = {**base, "object": "chat.completion", "usage": usage,
                               "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
                    data = json.dumps(payload).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant", "content": ""}, None)]
                deltas += [({"content": word + " "}, None) for word in (content or "").split()]
                deltas += [({"tool_calls": [{"index": i, **call}]}, None) for i, call in enumerate(calls)]
                deltas.append(({}, finish))
                events = [{**base, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
                          for delta, reason in deltas]
                if (body.get("stream_options") or {}).get("include_usage"):
                    events.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
                data = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
