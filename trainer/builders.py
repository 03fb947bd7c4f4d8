"""Pair builders: feedback and the LLM spans it names → rows in TRL's conversational formats.

Each builder is one small function from read-only records (feedback rows, :class:`LLMSpan`) to
row dicts, so each can be tested alone:

- :func:`dpo_from_correction`: prompt = what the model saw, chosen = the correction, rejected = its answer;
- :func:`dpo_from_preference`: two answers to the same prompt;
- :func:`dpo_from_outcome_contrast`: a successful and a failed run of one task, at the first step where
  they answer an identical prompt differently (lower trust: the outcome, not a person, judged the step);
- :func:`kto_from_judgement`: a label or a score past a threshold on one answer;
- :func:`sft_from_trace`: a successful run's last model call, its whole conversation as ``messages``;
- :func:`openai_from_sft`: the same conversation in OpenAI's fine-tuning shape;
- :func:`stepwise_from_steps`: the steps of a run up to its decisive step, good before it, bad at it;
- :func:`review_from_flag`: a miner flag with the decisive step's prompt and answer, for labelling elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tracemill.collector.feedback.conflicts import LABEL_POLARITY
from tracemill.trainer.chat import ChatMessage, openai_messages, render_step, tool_call
from tracemill.trainer.spans import LLMSpan

__all__ = [
    "corrected_message",
    "dpo_from_correction",
    "dpo_from_outcome_contrast",
    "dpo_from_preference",
    "first_divergence",
    "judgement_label",
    "kto_from_judgement",
    "openai_from_sft",
    "review_from_flag",
    "sft_from_trace",
    "stepwise_from_steps",
]


def corrected_message(value: Mapping[str, Any]) -> ChatMessage:
    """A correction (``{"output", "tool_calls"}``) as the assistant message it asks for."""
    message: ChatMessage = {"role": "assistant", "content": value.get("output") or ""}
    calls = value.get("tool_calls") or []
    if calls:
        message["tool_calls"] = [tool_call(call.get("id"), call["name"], call.get("arguments")) for call in calls]
    return message


def _meta(source: str, span: LLMSpan) -> dict[str, str]:
    return {"source": source, "trace_id": span.trace_id, "span_id": span.span_id}


def dpo_from_correction(span: LLMSpan, value: Mapping[str, Any]) -> dict[str, Any]:
    return {"prompt": span.prompt, "chosen": [corrected_message(value)], "rejected": span.output,
            "tools": span.tools, **_meta("correction", span)}


def dpo_from_preference(better: LLMSpan, worse: LLMSpan) -> dict[str, Any]:
    return {"prompt": better.prompt, "chosen": better.output, "rejected": worse.output, "tools": better.tools,
            **_meta("preference", better)}


def first_divergence(good: Sequence[LLMSpan], bad: Sequence[LLMSpan]) -> tuple[LLMSpan, LLMSpan] | None:
    """The first step where two runs saw the same prompt and tools and answered differently; None when
    their prompts part first (different tool results, say) or they never differ."""
    for good_step, bad_step in zip(good, bad, strict=False):
        if (good_step.prompt, good_step.tools) != (bad_step.prompt, bad_step.tools):
            return None
        if good_step.output != bad_step.output:
            return good_step, bad_step
    return None


def dpo_from_outcome_contrast(good: Sequence[LLMSpan], bad: Sequence[LLMSpan]) -> dict[str, Any] | None:
    found = first_divergence(good, bad)
    if found is None:
        return None
    good_step, bad_step = found
    return {"prompt": bad_step.prompt, "chosen": good_step.output, "rejected": bad_step.output,
            "tools": bad_step.tools, **_meta("outcome_contrast", bad_step)}


def judgement_label(row: Mapping[str, Any], *, good_at: float, bad_at: float) -> bool | None:
    """True (desirable), False (undesirable) or None (no clear judgement) for a label or score row."""
    if row["kind"] == "label":
        return LABEL_POLARITY.get(str(row["label"]).strip().lower()) if row["name"] != "flag_review" else None
    score = row["score"]
    if row["kind"] != "score" or score is None:
        return None
    if score >= good_at:
        return True
    if score <= bad_at:
        return False
    return None


def kto_from_judgement(span: LLMSpan, label: bool, source: str) -> dict[str, Any]:
    return {"prompt": span.prompt, "completion": span.output, "label": label, "tools": span.tools,
            **_meta(source, span)}


def sft_from_trace(steps: Sequence[LLMSpan], source: str) -> dict[str, Any] | None:
    """The run's last model call: its prompt (the whole conversation so far) and its answer."""
    if not steps or steps[-1].failed:
        return None
    last = steps[-1]
    return {"messages": last.prompt + last.output, "tools": last.tools, **_meta(source, last)}


def openai_from_sft(row: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's fine-tuning line: ``messages`` (arguments as JSON text) and ``tools`` when there are any;
    nothing else, since its validator refuses unknown keys."""
    out: dict[str, Any] = {"messages": openai_messages(row["messages"])}
    if row["tools"]:
        out["tools"] = row["tools"]
    return out


def _as_text(messages: Sequence[ChatMessage]) -> str:
    lines = []
    for message in messages:
        text = render_step([message]) if message["role"] == "assistant" else str(message.get("content") or "")
        lines.append(f"{message['role']}: {text}")
    return "\n".join(lines)


def stepwise_from_steps(steps: Sequence[LLMSpan], decisive: int, source: str) -> dict[str, Any]:
    """TRL's stepwise row: the run's first prompt as text, each answer up to the decisive one as a
    completion, labelled True before it and False at it (process supervision)."""
    kept = steps[: decisive + 1]
    return {
        "prompt": _as_text(kept[0].prompt),
        "completions": [render_step(step.output) for step in kept],
        "labels": [True] * decisive + [False],
        **_meta(source, kept[-1]),
    }


def review_from_flag(flag: Mapping[str, Any], span: LLMSpan | None, review: str) -> dict[str, Any]:
    return {
        "trace_id": flag["trace_id"],
        "span_id": flag["span_id"],
        "detector": flag["detector"],
        "detector_version": flag["detector_version"],
        "category": flag["category"],
        "severity": flag["severity"],
        "confidence": flag["confidence"],
        "evidence": flag["evidence"],
        "review": review,
        "prompt": span.prompt if span else [],
        "output": span.output if span else [],
        "tools": span.tools if span else [],
        "source": "flag",
    }
