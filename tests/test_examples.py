"""Every example runs offline, start to finish, and prints the trace it produced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# (script, the answer it prints, span lines its trace must show)
CASES = [
    ("decorators_agent.py", "Your order A-17 was refunded 20 EUR.", [
        "invoke_agent support-agent", '  route  (choice="answer")', "  execute_tool lookup_order  (id=call_1)",
        "  execute_tool refund  (id=call_2)", "  chat policy-v1",
    ]),
    ("openai_agent.py", "Oslo has light snow at -3°C; Lisbon is sunny at 19°C.", [
        "invoke_workflow weather-agent", "  chat scripted-model  (input_tokens=40, output_tokens=10",
        "  execute_tool get_weather  (id=call_2_0)", "  execute_tool get_weather  (id=call_2_1)",
    ]),
    ("langchain_agent.py", "Oslo has light snow at -3°C; Lisbon is sunny at 19°C.", [
        "invoke_agent weather-agent", "    chat generic-fake-chat-model",
        "    execute_tool get_weather  (id=call_oslo)", "    execute_tool get_weather  (id=call_lisbon)",
    ]),
    ("llama_index_agent.py", "Oslo has light snow at -3°C; Lisbon is sunny at 19°C.", [
        "invoke_agent weather-agent", "    chat MockFunctionCallingLLM  (finish_reasons=('tool_calls',))",
        "    execute_tool get_weather  (id=call_oslo)", "    execute_tool get_weather  (id=call_lisbon)",
    ]),
]


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TRACEMILL_", "OTEL_"))}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.mark.parametrize(("script", "answer", "span_lines"), CASES, ids=[c[0] for c in CASES])
def test_example_runs_offline_and_prints_its_trace(script, answer, span_lines):
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True,
                          env=_offline_env(), timeout=120, cwd=EXAMPLES.parent)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].strip() == answer
    for expected in span_lines:
        assert any(line.startswith(expected) for line in lines), f"{expected!r} not in:\n{done.stdout}"
    assert " ERROR" not in done.stdout


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == {case[0] for case in CASES}
