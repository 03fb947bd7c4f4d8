"""The tracing SDK: decorators, manual spans, runs, and the export pipeline.

Depends only on the OpenTelemetry API/SDK, wrapt and msgspec, so an agent process needs
nothing heavier to be traced.
"""

from tracemill.tracer.config import TracerSettings
from tracemill.tracer.decorators import agent, step, tool
from tracemill.tracer.manual import LLMCall, ToolCall, llm_call, tool_call
from tracemill.tracer.run import Run, run
from tracemill.tracer.runtime import force_flush, init, shutdown
from tracemill.tracer.spans import set_attributes, set_decision
from tracemill.tracer.versions.config_version import prompt
from tracemill.tracer.versions.rollout import rollout

__all__ = [
    "LLMCall", "Run", "ToolCall", "TracerSettings", "agent", "force_flush", "init", "llm_call", "prompt", "rollout",
    "run", "set_attributes", "set_decision", "shutdown", "step", "tool", "tool_call",
]
