"""Which runs are trials of the same task: the key that groups cross-validation and calibration.

The task id when a trace has one (``tracemill.task.id``), else the closest key it has: the conversation
or session id (``gen_ai.conversation.id``, OpenInference ``session.id``), else the first user input with
numbers, ids and quoted values masked, else the trace itself. Instrumentations other than tracemill's
rarely record a task id; without this fallback a store of their runs forms one group and never trains a
supervised scorer.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tracemill.miner.features import Frame
from tracemill.miner.taxonomy import normalize

__all__ = ["GROUPINGS", "first_user_input", "group_keys", "grouping_note"]

GROUPINGS = ("task id", "conversation id", "first user input", "trace")


def _user_text(message: Any) -> str:
    if not isinstance(message, dict) or message.get("role") != "user":
        return ""
    if isinstance(message.get("content"), str):
        return str(message["content"])
    parts = message.get("parts")
    if isinstance(parts, list):
        return " ".join(str(p.get("content", "")) for p in parts if isinstance(p, dict) and p.get("type") == "text")
    return ""


def first_user_input(genai_input: str, openinference_user: str, root_input: str) -> str:
    """The first user message: from the first LLM call's GenAI messages, else OpenInference's, else the root's
    input."""
    if genai_input.startswith("["):
        try:
            messages = json.loads(genai_input)
        except ValueError:
            messages = []
        for message in messages if isinstance(messages, list) else []:
            text = _user_text(message)
            if text:
                return text
    return openinference_user or root_input


def group_keys(frame: Frame) -> tuple[list[str], list[str]]:
    """Each trace's group key and which of :data:`GROUPINGS` gave it."""
    c = frame.columns
    keys, sources = [], []
    for trace, task, conversation, genai, oi, root in zip(
        c["trace_id"], c["task_id"], c["conversation_id"], c["first_llm_input"], c["first_oi_user"],
        c["root_input"], strict=True,
    ):
        if task:
            keys.append("task:" + task)
            sources.append("task id")
            continue
        if conversation:
            keys.append("conversation:" + conversation)
            sources.append("conversation id")
            continue
        text = normalize(first_user_input(genai, oi, root))
        if text:
            keys.append("input:" + text)
            sources.append("first user input")
        else:
            keys.append("trace:" + trace)
            sources.append("trace")
    return keys, sources


def grouping_note(sources: list[str]) -> str:
    """How the runs were grouped, e.g. "task id (120 runs)" or "conversation id (90 runs), trace (10 runs)"."""
    counts = Counter(sources)
    return ", ".join(f"{name} ({counts[name]} runs)" for name in GROUPINGS if counts[name])
