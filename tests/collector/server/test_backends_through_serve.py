"""What a backend shows of a traced run, on spans stored (and forwarded) by a real ``tracemill serve``.

The README's own tracing example runs with OpenInference on; its spans are read back from the
server's store: the run's root has an input and an output, the tool span's ``tool.parameters`` is
the tool's schema, the LLM span's ``input.value``/``output.value`` are OpenAI-style messages, and every
OpenInference name written is one the convention lists. The same run sent plainly to a server that
forwards with ``--openinference`` reaches the backend with the same attributes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.servers import clean_env, otlp_capture, start_server
from tests.tracer.test_openinference import SPEC_ATTRIBUTES, SPEC_KINDS, _spec_names, openinference_keys

README = Path(__file__).resolve().parents[3] / "README.md"
GET_WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                      "additionalProperties": False}


def readme_example(init: str) -> str:
    """The README's "Trace an agent" block, with its ``tracemill.init()`` replaced by ``init``."""
    text = README.read_text()
    section = text[text.index("## Trace an agent"):]
    code = re.search(r"<!-- run -->\n```python\n(.*?)^```", section, re.S | re.M)
    assert code is not None and "tracemill.init()" in code[1]
    return code[1].replace("tracemill.init()", init, 1)


def run_example(init: str) -> str:
    done = subprocess.run([sys.executable, "-c", readme_example(init)], capture_output=True, text=True,
                          env=clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]  # the example prints run.trace_id


def stored_spans(server: Any, trace_id: str) -> dict[str, dict[str, Any]]:
    """Span name → attributes of one trace, read back through the server's API."""
    tree = server.client.get(f"/api/traces/{trace_id}").json()
    found: dict[str, dict[str, Any]] = {}
    pending = list(tree["roots"])
    while pending:
        span = pending.pop()
        found[span["name"]] = span["attributes"]
        pending.extend(span["children"])
    return found


def check_backend_view(spans: dict[str, dict[str, Any]]) -> None:
    """Items 1-3 of what a backend shows, and only OpenInference names the convention lists."""
    root = spans["invoke_workflow travel_desk"]
    assert root["openinference.span.kind"] == "CHAIN"
    assert json.loads(root["input.value"]) == {"question": "Weather in Rome?"}
    assert root["input.mime_type"] == "application/json"
    assert (root["output.value"], root["output.mime_type"]) == ("sunny", "text/plain")
    assert json.loads(root["tracemill.output"]) == "sunny"

    tool = spans["execute_tool get_weather"]
    assert json.loads(tool["tool.parameters"]) == GET_WEATHER_SCHEMA
    assert json.loads(tool["input.value"]) == {"city": "Rome"}  # the call's arguments stay here
    assert tool["tool.description"] == "Current weather in a city."

    llm = spans["chat gpt-4o"]
    assert json.loads(llm["input.value"]) == {"model": "gpt-4o",
                                              "messages": [{"role": "user", "content": "Weather in Rome?"}]}
    assert json.loads(llm["output.value"]) == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]}
    assert json.loads(llm["gen_ai.input.messages"])[0]["parts"] == [{"type": "text", "content": "Weather in Rome?"}]

    for attributes in spans.values():
        assert attributes["openinference.span.kind"] in SPEC_KINDS
        for key in openinference_keys(attributes):
            assert set(_spec_names(key)) <= SPEC_ATTRIBUTES, key


def test_readme_example_with_openinference_stores_a_root_with_input_and_output_values(tmp_path, servers):
    server = start_server(tmp_path)
    servers.append(server)
    trace_id = run_example(f"tracemill.init(endpoint={server.url!r}, openinference=True)")
    server.wait_inserted(4)
    check_backend_view(stored_spans(server, trace_id))


def test_serve_forward_openinference_gives_the_backend_the_same_view(tmp_path, servers):
    with otlp_capture() as backend:
        server = start_server(tmp_path, args=("--forward", backend.url, "--openinference"))
        servers.append(server)
        trace_id = run_example(f"tracemill.init(endpoint={server.url!r})")
        server.wait_inserted(4)
        backend.wait()
        forwarded: dict[str, dict[str, Any]] = {}
        for payload in backend.bodies:
            for resource_spans in ExportTraceServiceRequest.FromString(payload).resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        forwarded[span.name] = {kv.key: getattr(kv.value, kv.value.WhichOneof("value"))
                                                for kv in span.attributes}
        check_backend_view(forwarded)
        stored = stored_spans(server, trace_id)  # the store keeps the spans as the agent sent them
        assert "input.value" not in stored["invoke_workflow travel_desk"]
        assert json.loads(stored["execute_tool get_weather"]["tracemill.tool.parameters"]) == GET_WEATHER_SCHEMA
