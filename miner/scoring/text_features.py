"""What the conversation says, for the learned scorer: when no error is raised, failed and successful runs
differ in what the user asked, which state-changing calls were made with which arguments, and how it ended.

Per trace: the user's turns (from the last LLM call's input messages, GenAI JSON or OpenInference's flattened
``llm.input_messages.*``), the tool calls in order with their arguments and results, which tools write
(change state) and which only read, the last actions and the final answer, and peer statistics among runs of
the same task (the share of peers that made the same state-changing calls with the same arguments). Read only
when the supervised scorer trains, over the traces being scored, in two queries.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracemill.collector.store.schema import SPANS_TABLE
from tracemill.miner.features import Frame
from tracemill.miner.final_action import HANDOFF_TOOL_PATTERN
from tracemill.miner.grouping import first_user_input
from tracemill.miner.sql import span_columns

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["READ_TOOL_PATTERN", "TEXT_NUMERIC", "Conversation", "conversation_features", "is_write_tool",
           "load_conversations"]  # fmt: skip

READ_TOOL_PATTERN = (
    r"(?i)^(get|find|search|list|lookup|look_up|read|fetch|check|query|calculate|compute|think|view|show|describe"
    r"|retrieve|count|validate|verify|browse|open|load|summari[sz]e)(_|$|[A-Z])"
)
"""A tool whose name says it only reads; any other tool is taken to change state (a write)."""

TEXT_NUMERIC = ("write_calls", "read_calls", "write_tools", "peer_agreement", "peers", "ends_with_tool_call",
                "final_handoff", "final_gives_up", "user_turns", "final_chars")  # fmt: skip
"""Numeric features this module adds to the scorer's trace features."""

_READ = re.compile(READ_TOOL_PATTERN)
_HANDOFF = re.compile(HANDOFF_TOOL_PATTERN)
_VALUE = re.compile(r"[A-Za-z_#]*\d[\w#.-]*|[A-Za-z]{2,}")


def is_write_tool(name: str) -> bool:
    return bool(name) and not _READ.search(name)


@dataclass
class Conversation:
    user: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (tool, arguments, result), in order


def load_conversations(store: Store, frame: Frame) -> dict[str, Conversation]:
    """The user's turns and the tool calls of each trace of ``frame``.

    The spans are selected by the condition that selected the frame's traces, not by a list of their ids:
    a parameter of 100,000 ids made each of these reads take minutes.
    """
    out: dict[str, Conversation] = defaultdict(Conversation)
    if not len(frame):
        return out
    where = f"TraceId != '' AND {frame.where}"
    calls = store.query(
        f"SELECT TraceId, arrayMap(x -> (x.2, x.3, x.4), arraySort(groupArray((start_ns, tool, substring(args, 1, 400),"
        f" substring(result, 1, 400))))) FROM (SELECT {span_columns('0')} FROM {SPANS_TABLE} "
        f"WHERE {where}) WHERE is_tool GROUP BY TraceId",
        frame.params,
    ).result_rows
    for trace, items in calls:
        out[trace].calls = [tuple(item) for item in items]
    inputs = store.query(
        "SELECT TraceId, argMax(SpanAttributes['gen_ai.input.messages'], Timestamp), "
        "argMax(mapFilter((k, v) -> startsWith(k, 'llm.input_messages.') AND (endsWith(k, '.message.role') "
        "OR endsWith(k, '.message.content')), SpanAttributes), Timestamp) "
        f"FROM {SPANS_TABLE} WHERE {where} AND (SpanAttributes['gen_ai.input.messages'] != '' "
        "OR mapContains(SpanAttributes, 'llm.input_messages.0.message.role')) GROUP BY TraceId",
        frame.params,
    ).result_rows
    for trace, genai, flattened in inputs:
        out[trace].user = _user_turns(genai, flattened)
    return out


def _user_turns(genai: str, flattened: dict[str, str]) -> list[str]:
    turns = []
    if genai.startswith("["):
        try:
            messages = json.loads(genai)
        except ValueError:
            messages = []
        for message in messages if isinstance(messages, list) else []:
            text = first_user_input(json.dumps([message]), "", "")
            if text:
                turns.append(text)
        if turns:
            return turns
    by_index: dict[int, dict[str, str]] = defaultdict(dict)
    for key, value in flattened.items():
        parts = key.split(".")
        if len(parts) >= 5 and parts[2].isdigit():
            by_index[int(parts[2])][parts[-1]] = value
    return [m.get("content", "") for _, m in sorted(by_index.items()) if m.get("role") == "user" and m.get("content")]


def _tokens(text: str, prefix: str, limit: int = 60) -> list[str]:
    return [f"{prefix}:{t.lower()}" for t in _VALUE.findall(text or "")[:limit]]


def _write_signature(calls: list[tuple[str, str, str]]) -> str:
    return "|".join(sorted(f"{tool}({args})" for tool, args, _ in calls if is_write_tool(tool)))


def conversation_features(frame: Frame, conversations: dict[str, Conversation],
                          peer_keys: Sequence[str]) -> tuple[list[str], list[list[float]]]:
    """(a document of prefixed tokens, the :data:`TEXT_NUMERIC` values) for each trace of ``frame``."""
    traces = frame["trace_id"]
    signatures = [_write_signature(conversations[t].calls) if t in conversations else "" for t in traces]
    by_peer: dict[str, Counter[str]] = defaultdict(Counter)
    for key, signature in zip(peer_keys, signatures, strict=True):
        if key:
            by_peer[key][signature] += 1
    documents, numeric = [], []
    for i, trace in enumerate(traces):
        c = conversations.get(trace) or Conversation()
        writes = [(tool, args, result) for tool, args, result in c.calls if is_write_tool(tool)]
        peers = by_peer[peer_keys[i]] if peer_keys[i] else Counter()
        others = sum(peers.values()) - 1
        agreement = (peers[signatures[i]] - 1) / others if others > 0 else 0.5
        tokens = [t for turn in c.user for t in _tokens(turn, "u")]
        tokens += _tokens(frame["final_output"][i], "a")
        for tool, args, result in c.calls:
            mark = "w" if is_write_tool(tool) else "r"
            tokens += [f"{mark}:{tool}", *_tokens(args, f"{mark}a"), *_tokens(result, f"{mark}r", 20)]
        last = [tool for tool, _, _ in c.calls[-2:]]
        tokens += [f"last{len(last) - n}:{tool}" for n, tool in enumerate(last)]
        tokens += [f"end:{frame['final_kind'][i]}", f"endtool:{frame['final_tool'][i]}",
                   f"writes:{len(writes)}", f"agree:{round(agreement, 1)}"]  # fmt: skip
        documents.append(" ".join(tokens))
        numeric.append([len(writes), len(c.calls) - len(writes), len({w[0] for w in writes}), agreement,
                        max(others, 0), float(frame["final_kind"][i] == "tool_call"), frame["final_handoff"][i],
                        frame["final_gives_up"][i], len(c.user), len(frame["final_output"][i] or "")])  # fmt: skip
    return documents, numeric


def peer_keys(frame: Frame) -> list[str]:
    """Runs of the same task for peer statistics: the task id, else the exact first user input (lower case);
    a conversation id names one run, not a task, so it makes no peers."""
    keys = []
    for task, genai, oi, root in zip(frame["task_id"], frame["first_llm_input"], frame["first_oi_user"],
                                     frame["root_input"], strict=True):
        text = " ".join(first_user_input(genai, oi, root).lower().split())
        keys.append("task:" + task if task else ("input:" + text if text else ""))
    return keys


def handoff_tool(name: str) -> bool:
    return bool(_HANDOFF.search(name or ""))
