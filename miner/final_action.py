"""How a run ended: its final answer, or the tool call it ended with, and whether that gives up or hands off.

The final answer is the root's output, else the outermost agent span's output, else the text of the last LLM
message (GenAI JSON messages, the flattened ``llm.output_messages.*`` of OpenInference or ``gen_ai.completion.*``
of OpenLLMetry, or a plain ``output.value``).
A run whose last LLM decision calls a tool, or whose last step is a tool run, ended with that action: it is
reported as the final action (tool name and arguments), never as an empty output. A hand-off (a tool that
transfers to a human or another agent, or an answer saying so) is told apart from giving up, because in
customer service a hand-off is often the correct ending.

The feature query returns the raw pieces (``root_output``, ``agent_output``, ``last_llm_output``, the
flattened fields, the last tool); :func:`final_columns` turns them into the frame's :data:`FINAL_COLUMNS`,
which :mod:`tracemill.miner.feature_cache` keeps with the trace's features.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from tracemill.miner.features import Frame

try:  # CPython's own parser of patterns, read by _with_first_letters
    from re import _constants as _sre  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_constants as _sre
    import sre_parse as _parser

__all__ = ["COLUMNS", "FINAL_COLUMNS", "GIVE_UP_PATTERN", "HANDOFF_PATTERN", "HANDOFF_TOOL_PATTERN", "FinalAction",
           "final_action", "final_columns"]  # fmt: skip

GIVE_UP_PATTERN = (
    r"(?i)\bi( cannot| can[’']t| can not| am unable to|[’']m unable to| am not able to|[’']m not able to"
    r"| could not| couldn[’']t| was unable to| wasn[’']t able to) "
    r"(help|assist|complete|do|find|finish|answer|fulfil|fulfill|process|provide|continue)"
    r"|\bunable to (complete|help|assist|finish|continue)\b|\bgave up\b|\bgiving up\b"
    r"|\bmax(imum)? (number of )?(iterations|steps|turns)\b|\biteration limit\b|\bstopped due to\b"
)
"""A final answer that gives up: a refusal, "cannot help", an iteration limit. A contraction may be written with
the typographic apostrophe (’), as many models write it."""

HANDOFF_PATTERN = (
    r"(?i)\b(escalat\w*|hand(ing|ed)?[ -]?(off|over)|transfer(ring|red)?|forward(ing|ed)?|connect(ing|ed)?)"
    r"( this| you| it| your \w+| the \w+)?( now)? (to|with) (an? |our |the )?(human|person|live agent|support|"
    r"operator|specialist|colleague|representative)"
    r"|\bhuman (agent|review|operator|representative)\b"
)
"""An answer that hands the user over to a human or another agent."""

HANDOFF_TOOL_PATTERN = r"(?i)hand_?off|escalat|transfer_to|route_to|connect_to|forward_to|human|live_?agent|operator"
"""A tool whose call hands the conversation over (``transfer_to_human_agents``, ``escalate``, ``handoff``)."""

COLUMNS = (
    "root_output",
    "agent_output",
    "last_llm_output",
    "last_flat_text",
    "last_flat_tool",
    "last_flat_args",
    "ends_with_tool",
    "last_tool",
    "last_tool_args",
)
"""The feature columns a final action is read from."""

FINAL_COLUMNS = {
    "final_output": "String", "final_kind": "LowCardinality(String)", "final_tool": "String",
    "final_arguments": "String", "final_empty": "UInt8", "final_gives_up": "UInt8", "final_handoff": "UInt8",
}  # fmt: skip
"""The columns a final action adds to the frame (with their ClickHouse types): the answer or the closing tool
call, and whether it is empty, gives up or hands off."""

_GIVE_UP = re.compile(GIVE_UP_PATTERN)
_HANDOFF = re.compile(HANDOFF_PATTERN)


def _first_letters(items: Any) -> set[int] | None:
    """The characters a parsed pattern (``re._parser`` items) can start with after word boundaries, or None when
    that is not a set of literal characters."""
    for op, value in items:
        if op is _sre.AT and value is _sre.AT_BOUNDARY:
            continue
        if op is _sre.LITERAL:
            return {value}
        if op is _sre.IN and all(kind is _sre.LITERAL for kind, _ in value):  # a|b is parsed as [ab]
            return {code for _, code in value}
        if op is _sre.SUBPATTERN:
            return _first_letters(value[-1])
        if op is _sre.BRANCH:
            letters: set[int] = set()
            for branch in value[1]:
                found = _first_letters(branch)
                if found is None:
                    return None
                letters |= found
            return letters
        return None
    return None


def _with_first_letters(pattern: str) -> re.Pattern[str]:
    """``pattern`` (case-insensitive) with a look-ahead for the letters its matches can start with: the same
    matches, but a search skips the other positions at once instead of trying every branch there (three times
    faster on short answers). The pattern as is when those letters cannot be read from it."""
    try:
        letters = _first_letters(_parser.parse(pattern))
    except Exception:  # the parser is CPython's own: a pattern it does not read keeps no look-ahead
        letters = None
    if not letters or not all(chr(c).isalpha() for c in letters):
        return re.compile(pattern)
    ahead = "".join(sorted(chr(c) for c in letters))
    return re.compile(f"(?i)(?=[{ahead}])(?:{pattern.removeprefix('(?i)')})")


_EITHER = _with_first_letters("(?i)(?:" + HANDOFF_PATTERN.removeprefix("(?i)") + ")|(?:"
                              + GIVE_UP_PATTERN.removeprefix("(?i)") + ")")
"""Either pattern, in one search: most answers match neither, and then one search tells."""
_HANDOFF_TOOL = re.compile(HANDOFF_TOOL_PATTERN)
_EMPTY = {"", "null", '""', "[]", "{}", "None"}


class FinalAction(msgspec.Struct, frozen=True):
    """``kind`` is "answer", "tool_call" or "none"; ``text`` the final answer (may accompany a tool call). A
    struct, not a dataclass: one is made per mined trace, and a frozen dataclass is several times slower to make."""

    kind: str
    text: str
    tool: str = ""
    arguments: str = ""
    gives_up: bool = False
    handoff: bool = False

    def describe(self) -> str:
        if self.kind == "tool_call":
            return f"tool call {self.tool}({self.arguments[:200]})"
        return self.text[:200]


class _Part(msgspec.Struct):
    type: Any = None
    content: Any = None
    name: Any = None
    arguments: Any = None


class _Message(msgspec.Struct):
    parts: list[_Part] | None = None
    content: Any = None


_MESSAGES = msgspec.json.Decoder(list[_Message] | _Message)
"""GenAI messages as most instrumentations write them, decoded straight into structs; any other shape is read
by the generic path (:func:`_any_text_and_call`)."""


def _genai_text_and_call(raw: str) -> tuple[str, str, str] | None:
    """(text, tool, arguments) of GenAI JSON messages (role + parts), or None when ``raw`` is not such JSON."""
    if not raw.startswith(("[", "{")):
        return None
    try:
        value = _MESSAGES.decode(raw)
    except msgspec.ValidationError:  # valid JSON of another shape
        return _any_text_and_call(raw)
    except msgspec.DecodeError:
        return None
    texts, tool, arguments = [], "", ""
    for message in value if isinstance(value, list) else (value,):
        parts = message.parts
        if parts is None:
            if isinstance(message.content, str):
                texts.append(message.content)
            continue
        for part in parts:
            if part.type == "text" and isinstance(part.content, str):
                texts.append(part.content)
            elif part.type == "tool_call":
                tool, arguments = str(part.name or ""), _as_text(part.arguments)
    return " ".join(texts), tool, arguments


def _any_text_and_call(raw: str) -> tuple[str, str, str] | None:
    """:func:`_genai_text_and_call` of JSON of any shape: messages that are not objects are no GenAI messages,
    and parts that are not objects are skipped."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:  # the typed decoder stopped at the first part of another shape, before the error
        return None
    messages = value if isinstance(value, list) else [value]
    texts, tool, arguments = [], "", ""
    for message in messages:
        if not isinstance(message, dict):
            return None
        parts = message.get("parts")
        if not isinstance(parts, list):
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            continue
        for part in parts:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("content"), str):
                texts.append(part["content"])
            elif part.get("type") == "tool_call":
                tool, arguments = str(part.get("name") or ""), _as_text(part.get("arguments"))
    return " ".join(texts), tool, arguments


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if value is not None else ""


def _text_of(raw: str) -> str:
    """The text of an output attribute: GenAI messages' text parts, a JSON string, or the raw text."""
    if not raw:  # most runs' root and agent spans record no output
        return ""
    raw = raw.strip()
    parsed = _genai_text_and_call(raw)
    if parsed is not None:
        return parsed[0].strip()
    if raw.startswith('"'):
        try:
            value = msgspec.json.decode(raw)
        except ValueError:
            return raw
        return value.strip() if isinstance(value, str) else raw
    return "" if raw in _EMPTY else raw


def final_action(row: dict[str, Any]) -> FinalAction:
    """The final action of one trace's feature row (the columns of :data:`COLUMNS`)."""
    return _final_action(*(row[name] for name in COLUMNS))


def _final_action(root_output: str, agent_output: str, last_llm_output: str, last_flat_text: str,
                  last_flat_tool: str, last_flat_args: str, ends_with_tool: int, last_tool: str,
                  last_tool_args: str) -> FinalAction:
    """:func:`final_action` of the columns of :data:`COLUMNS`, in that order."""
    text = _text_of(root_output) or _text_of(agent_output)
    if text:  # the run's own answer: the last LLM message is not read
        return _answer(text)
    llm = (last_llm_output or "").strip()
    parsed = _genai_text_and_call(llm)
    llm_text, tool, arguments = parsed if parsed is not None else (_text_of(llm), "", "")
    llm_text = llm_text.strip() or (last_flat_text or "").strip()
    if not tool and last_flat_tool:
        tool, arguments = last_flat_tool, last_flat_args
    if not tool and ends_with_tool and last_tool:
        tool, arguments = last_tool, last_tool_args
    if not tool:
        return _answer(llm_text)
    said = bool(llm_text) and _EITHER.search(llm_text) is not None
    handoff = bool(_HANDOFF_TOOL.search(tool)) or (said and bool(_HANDOFF.search(llm_text)))
    gives_up = not handoff and said and bool(_GIVE_UP.search(llm_text))
    return FinalAction("tool_call", llm_text, tool, arguments, gives_up, handoff)


def _answer(text: str) -> FinalAction:
    """A run that ended with ``text`` (an answer, or nothing when it is empty)."""
    if not text or text in _EMPTY:
        return FinalAction("none", text)
    if _EITHER.search(text) is None:
        return FinalAction("answer", text)
    handoff = bool(_HANDOFF.search(text))
    return FinalAction("answer", text, gives_up=not handoff and bool(_GIVE_UP.search(text)), handoff=handoff)


def final_columns(frame: Frame, rows: Sequence[int]) -> dict[str, list[Any]]:
    """The :data:`FINAL_COLUMNS` of ``frame``'s ``rows`` (distinct, in order)."""
    columns = [frame[name] for name in COLUMNS]
    every = len(rows) == len(frame)
    values = zip(*columns, strict=True) if every else ([column[i] for column in columns] for i in rows)
    actions = [_final_action(*row) for row in values]
    return {
        "final_output": [a.text[:1000] for a in actions],
        "final_kind": [a.kind for a in actions],
        "final_tool": [a.tool for a in actions],
        "final_arguments": [a.arguments[:1000] for a in actions],
        "final_empty": [int(a.kind == "none") for a in actions],
        "final_gives_up": [int(a.gives_up) for a in actions],
        "final_handoff": [int(a.handoff) for a in actions],
    }
