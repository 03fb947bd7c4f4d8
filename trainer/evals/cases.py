"""An eval case: what a candidate is given and what counts as right, with the span it came from.

A *decision* case is one model call: the exact prompt (system instructions, then the input messages), the tool
definitions, and the expected decision (``{"output", "tool_calls"}``, the correction). A *run* case is one agent
run: its input, its recorded tool calls (for replay) and its outcome. Cases are read-only records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Case", "CaseKind", "decision_case_id", "run_case_id"]

CaseKind = Literal["decision", "run"]


@dataclass(frozen=True)
class Case:
    case_id: str
    kind: CaseKind
    source: str
    """What the case was built from: ``correction``, ``outcome`` or ``flag``."""
    trace_id: str
    span_id: str
    prompt: list[dict[str, Any]] = field(default_factory=list)
    """Chat-template messages the model saw, system instructions first (decision cases)."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)
    """``{"output": text or None, "tool_calls": [{"name", "arguments"}]}`` (decision cases)."""
    input: Any = None
    """The run's input (run cases): what the agent is called with."""
    recording: list[dict[str, Any]] = field(default_factory=list)
    """The run's tool calls in order: ``{"name", "arguments", "result", "error"}`` (run cases)."""
    outcome: float | None = None
    must_pass: bool = False
    group: str = ""
    """Task, else conversation, else trace: what a held-out split keeps together."""

    def summary(self) -> dict[str, Any]:
        """The fields a listing shows (no prompt or recording)."""
        return {"case_id": self.case_id, "kind": self.kind, "source": self.source, "trace_id": self.trace_id,
                "span_id": self.span_id, "must_pass": self.must_pass, "outcome": self.outcome}


def decision_case_id(trace_id: str, span_id: str) -> str:
    """Stable across suite versions, so runs of different versions still pair up."""
    return f"d-{trace_id[:16]}-{span_id}"


def run_case_id(trace_id: str) -> str:
    return f"r-{trace_id}"
