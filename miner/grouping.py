"""Which runs are trials of the same task: the key that groups cross-validation and calibration.

The task id when a trace has one (``tracemill.task.id``), else the closest key it has: the conversation
or session id (``gen_ai.conversation.id``, OpenInference ``session.id``), else the first user input with
numbers, ids and quoted values masked, else the trace itself. Instrumentations other than tracemill's
rarely record a task id; without this fallback a store of their runs forms one group and never trains a
supervised scorer.
"""

from __future__ import annotations

from collections import Counter

from tracemill.miner.features import Frame
from tracemill.miner.taxonomy import normalize

__all__ = ["GROUPINGS", "group_keys", "grouping_note"]

GROUPINGS = ("task id", "conversation id", "first user input", "trace")


def group_keys(frame: Frame) -> tuple[list[str], list[str]]:
    """Each trace's group key and which of :data:`GROUPINGS` gave it."""
    c = frame.columns
    keys, sources = [], []
    for trace, task, conversation, first_user in zip(c["trace_id"], c["task_id"], c["conversation_id"],
                                                     c["first_user"], strict=True):
        if task:
            keys.append("task:" + task)
            sources.append("task id")
            continue
        if conversation:
            keys.append("conversation:" + conversation)
            sources.append("conversation id")
            continue
        text = normalize(first_user)
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
