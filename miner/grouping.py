"""Which runs are trials of the same task: the key that groups cross-validation and calibration.

The task id when a trace has one (``tracemill.task.id``), else the closest key it has: a conversation or
session id (``gen_ai.conversation.id``, OpenInference ``session.id``) that several runs share, else the
identifiers the user gave (order, account or booking numbers: a token with a digit, of five characters or
more) when another run's user gave one of them too, else the run's own conversation id, else the first user
input with numbers, ids and quoted values masked, else the trace itself.

Instrumentations other than tracemill's rarely record a task id, and many name each run its own
conversation. Trials of one task then share no key, and cross-validation that splits them between folds
measures how well the model recognises a task it has seen, not how it does on the next one: the user's
identifiers are what trials of a task have in common (the same customer, the same order) and separate
tasks do not. An identifier that more than 1% of the runs (and more than 20) share is a common value, not
someone's, and no group grows past that size. Without these fallbacks a store of other instrumentations'
runs forms one group and never trains a supervised scorer.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from tracemill.miner.features import Frame
from tracemill.miner.taxonomy import normalize

__all__ = ["GROUPINGS", "IDENTIFIER_PATTERN", "MIN_IDENTIFIER", "group_keys", "grouping_note", "identifiers"]

GROUPINGS = ("task id", "conversation id", "user's identifiers", "first user input", "trace")

IDENTIFIER_PATTERN = r"[\w#-]*\d[\w#-]*"
"""An identifier in lower-cased text: a token with a digit (an order, account, booking or phone number)."""

MIN_IDENTIFIER = 5
"""Shorter tokens with a digit are quantities, years and times, not identifiers."""

_WORD = re.compile(r"[\w#-]+")
_DIGIT = re.compile(r"\d")


def identifiers(text: str) -> list[str]:
    """The identifiers in ``text`` (lower case): the matches of :data:`IDENTIFIER_PATTERN`, found as the words
    that hold a digit (the pattern itself backtracks through every word without one)."""
    return [w for w in _WORD.findall(text.lower()) if len(w) >= MIN_IDENTIFIER and _DIGIT.search(w)]


def group_keys(frame: Frame, conversations: Callable[[], Any] | None = None,
               rows: Sequence[int] | None = None) -> tuple[list[str], list[str]]:
    """Each trace's group key and which of :data:`GROUPINGS` gave it. ``conversations``: when the run reads them,
    returns the table of :func:`~tracemill.miner.scoring.text_features.conversation_sql` (the identifiers of every
    user turn, in its ``user_ids``), called only when some run has no task id or shared conversation (the table may
    still be on its way); else the identifiers come from the first user input. ``rows``: the only rows whose
    identifiers are compared (all by default); the others skip that step."""
    c = frame.columns
    shared = Counter(c["conversation_id"])
    tasks, conversation_ids = c["task_id"], c["conversation_id"]
    candidates = [i for i in (range(len(frame)) if rows is None else rows)
                  if not tasks[i] and not (conversation_ids[i] and shared[conversation_ids[i]] > 1)]
    linked = _linked(_identifiers_of(frame, candidates, conversations), len(frame))
    keys, sources = [], []
    for i, (trace, task, conversation, first_user) in enumerate(zip(c["trace_id"], c["task_id"], c["conversation_id"],
                                                                    c["first_user"], strict=True)):
        if task:
            keys.append("task:" + task)
            sources.append("task id")
        elif conversation and shared[conversation] > 1:
            keys.append("conversation:" + conversation)
            sources.append("conversation id")
        elif i in linked:
            keys.append("user:" + linked[i])
            sources.append("user's identifiers")
        elif conversation:
            keys.append("conversation:" + conversation)
            sources.append("conversation id")
        elif text := normalize(first_user):
            keys.append("input:" + text)
            sources.append("first user input")
        else:
            keys.append("trace:" + trace)
            sources.append("trace")
    return keys, sources


def _identifiers_of(frame: Frame, rows: list[int],
                    read: Callable[[], Any] | None) -> dict[int, Sequence[str]]:
    """The user's identifiers of each of ``rows``: from every user turn when the conversations are read."""
    if not rows:
        return {}
    conversations = read() if read is not None else None
    if conversations is None or not conversations.num_rows or "user_ids" not in conversations.column_names:
        first = frame["first_user"]
        return {i: identifiers(first[i]) for i in rows}
    position = {trace: k for k, trace in enumerate(conversations.column("TraceId").to_pylist())}
    traces = frame["trace_id"]
    present = [i for i in rows if traces[i] in position]  # a trace written after the read has no conversation
    found = conversations.column("user_ids").take([position[traces[i]] for i in present]).to_pylist()
    out: dict[int, Sequence[str]] = dict.fromkeys(rows, ())
    out.update(zip(present, found, strict=True))
    return out


def _linked(ids_of: dict[int, Sequence[str]], runs: int) -> dict[int, str]:
    """The runs that share an identifier with another run, each with its group's name (the group's smallest
    shared identifier). Groups are joined through shared identifiers, the rarest first, and never grow past the
    cap on a common value: chains of shared values (a zip code, a product number) would otherwise join most of a
    large store into one group, which no cross-validation can split."""
    runs_of: dict[str, list[int]] = defaultdict(list)
    for i, ids in ids_of.items():
        for token in set(ids):
            runs_of[token].append(i)
    common = max(20, runs // 100)
    parent, size = list(range(runs)), [1] * runs
    name: dict[int, str] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = i = parent[parent[i]]
        return i

    shared = [(len(members), token, members) for token, members in runs_of.items() if 1 < len(members) <= common]
    for _, token, members in sorted(shared):
        first = members[0]
        for other in members[1:]:
            top, top_other = root(first), root(other)
            if top_other == top or size[top] + size[top_other] > common:
                continue
            parent[top_other] = top
            size[top] += size[top_other]
            name[top] = min(name.get(top, token), name.pop(top_other, token), token)
    return {i: name[r] for i in ids_of if (r := root(i)) in name}


def grouping_note(sources: list[str]) -> str:
    """How the runs were grouped, e.g. "task id (120 runs)" or "conversation id (90 runs), trace (10 runs)"."""
    counts = Counter(sources)
    return ", ".join(f"{name} ({counts[name]} runs)" for name in GROUPINGS if counts[name])
