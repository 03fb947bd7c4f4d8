"""Features of a run's candidate steps for the decisive-step ranker.

A failure that raises nothing still leaves traces in how information moves through the run: the step
that went wrong often brings in something no earlier step or the request held (a number misread from a
result) that later steps then repeat, drops a term of the request that earlier steps kept (a skipped
constraint), calls a tool with an argument nobody asked for, or quotes a value from a result row
other than the one it names. Each candidate gets those flow signals, its position (index, share of the
run, first/last of its agent), its kind, agent, name and tool, error and retry signals, hashed tokens
of what it wrote, the run's failure kind and whether a rule detector flagged it, as a ``{name: value}``
dict a feature hasher turns into a vector.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from tracemill.miner.decisive.spans import Candidate, Run

__all__ = ["run_features", "tokens"]

_WORD = re.compile(r"\d{4}-\d\d-\d\d|[a-z][a-z0-9_\-]+|\d+(?:\.\d+)?")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
# The words of the message and tool-call shapes themselves, present in every span.
_SHAPE = frozenset(("role", "parts", "type", "content", "text", "assistant", "user", "system", "tool", "tool_call",
                    "tool_call_response", "arguments", "name", "response", "finish_reason", "stop", "function",
                    "call", "result", "the", "and", "for", "with", "you", "your", "null", "true", "false", "call_"))
_MAX_TOKENS = 40
_FLAGS = frozenset(("true", "false"))
_CLAUSE = re.compile(r"[;\n]|\.\s")


def tokens(text: str, *, keep: frozenset[str] = frozenset()) -> set[str]:
    """Content words and numbers of ``text`` (numbers without a trailing ``.0``), shape words left out
    (except those in ``keep``)."""
    out = set()
    for word in _WORD.findall(text.lower()):
        if (word in _SHAPE and word not in keep) or word.startswith("call_") or (len(word) < 2 and not word.isdigit()):
            continue
        if _NUMBER.match(word) and "." in word:
            word = word.rstrip("0").rstrip(".")
        out.add(word)
    return out


def _numbers(words: Iterable[str]) -> set[str]:
    return {w for w in words if _NUMBER.match(w)}


def _rows(text: str) -> list[set[str]]:
    """The records (JSON objects) of a tool result, each as the set of its values' tokens."""
    try:
        value = json.loads(text)
    except ValueError:
        return []
    out: list[set[str]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.append(tokens(" ".join(str(v) for v in item.values() if not isinstance(v, (dict, list))),
                              keep=_FLAGS))
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and item.lstrip().startswith(("{", "[")):
            try:  # a result recorded as JSON text inside JSON
                stack.append(json.loads(item))
            except ValueError:
                continue
    return out


def run_features(run: Run, failure_kind: str = "", rule_spans: Sequence[str] = ()) -> list[dict[str, float]]:
    """One feature dict per candidate step of ``run``, in order (``rule_spans``: the spans the rule detectors
    flagged in this run, most confident first).

    Information flows through the model calls and tool calls; an agent or step span contains them and
    returns what they produced, so it gets no flow signals of its own and adds nothing to what was seen.
    """
    steps = run.steps
    leaf = [step.kind in ("llm", "tool") for step in steps]
    outs = [tokens(step.output_text) for step in steps]
    ins = [tokens(step.input_text) for step in steps]
    request, answer = tokens(run.request), tokens(run.answer) or (outs[-1] if outs else set())
    seen = set(request)
    rows: list[set[str]] = []
    said: set[tuple[str, str]] = set()  # (record word, value) pairs earlier steps already misquoted
    calls = [(step.tool, step.input_text) for step in steps]
    agents = [step.agent for step in steps]
    out = []
    for i, step in enumerate(steps):
        features = _position(i, len(steps), agents) | _identity(step, failure_kind) | _errors(i, step, calls)
        if step.span_id in rule_spans:  # a rule's decisive span: where the rules alone would point
            features["rule_span"] = 1.0
            features["rule_top"] = float(step.span_id == rule_spans[0])
        if leaf[i]:
            later = [j for j in range(i + 1, len(steps)) if leaf[j]]
            later_outs = set().union(*(outs[j] for j in later)) if later else set()
            features |= _flow(outs[i], ins[i], request, seen, answer, later_outs, [ins[j] for j in later], step)
            if step.kind == "llm":
                features |= _row_support(_texts(step.output_text), rows, said)
            seen |= outs[i] | ins[i]
            if step.kind == "tool":
                rows.extend(_rows(step.output_text))
        features |= _hashed(step, outs[i], ins[i])
        out.append(features)
    return out


def _position(i: int, n: int, agents: list[str]) -> dict[str, float]:
    share = i / (n - 1) if n > 1 else 0.0
    mine = [j for j, agent in enumerate(agents) if agent == agents[i]]
    order = list(dict.fromkeys(agents)).index(agents[i])
    return {"pos": share, "pos2": share * share, "first": float(i == 0), "last": float(i == n - 1),
            "index": min(i, 20) / 20, "log_n": math.log1p(n) / 4, "agent_first": float(i == mine[0]),
            "agent_last": float(i == mine[-1]), "agent_order": min(order, 6) / 6,
            f"quartile={min(3, int(share * 4))}": 1.0}


def _identity(step: Candidate, failure_kind: str) -> dict[str, float]:
    features = {f"kind={step.kind}": 1.0, f"agent={step.agent}": 1.0, f"name={step.name}": 1.0,
                f"agent_kind={step.agent}:{step.kind}": 1.0}
    if step.tool:
        features[f"tool={step.tool}"] = 1.0
    if failure_kind:
        features[f"fail={failure_kind}"] = 1.0
        features[f"fail_kind={failure_kind}:{step.kind}"] = 1.0
    if step.kind == "llm" and (step.asks_tool or '"tool_call"' in step.output_text):
        features["asks_tool"] = 1.0
    return features


def _errors(i: int, step: Candidate, calls: list[tuple[str, str]]) -> dict[str, float]:
    same = [j for j, call in enumerate(calls) if step.tool and call == calls[i]]
    return {"error": float(step.error), "result_error": float(step.result_error),
            "retry": float(bool(same) and same[0] < i), "retried_later": float(bool(same) and same[-1] > i)}


def _flow(out: set[str], inp: set[str], request: set[str], seen: set[str], answer: set[str],
          later_outs: set[str], later_ins: list[set[str]], step: Candidate) -> dict[str, Any]:
    """How this step's information relates to what came before and after it."""
    novel = out - seen - inp
    new_numbers = {n for n in _numbers(novel) if len(n) > 1}
    reach = novel & answer
    dropped = (request & inp) - out if step.kind == "llm" and out else set()
    gone = dropped - later_outs - answer
    args_new = (inp - seen) if step.kind == "tool" else set()
    features: dict[str, Any] = {
        "novel_terms": math.log1p(len(novel)) / 3, "novel_numbers": math.log1p(len(new_numbers)),
        "novel_in_answer": math.log1p(len(reach)), "novel_number_in_answer": float(bool(_numbers(reach))),
        "repeated_later": len(out & later_outs) / len(out) if out else 0.0,
        "dependents": math.log1p(sum(1 for later in later_ins if novel & later)),
        "dropped_request_terms": math.log1p(len(dropped)), "dropped_for_good": math.log1p(len(gone)),
        "new_argument_terms": math.log1p(len(args_new)), "new_argument_numbers": math.log1p(len(_numbers(args_new))),
        "empty_output": float(not out),
    }
    # Which request terms a step lets go of, and which new words it brings: a team's reviewers learn
    # that dropping "nonstop" matters and dropping "please" does not.
    features.update({f"gone:{w}": 1.0 for w in sorted(gone)[:_MAX_TOKENS]})
    features.update({f"new:{w}": 1.0 for w in sorted(w for w in novel if not _NUMBER.match(w))[:_MAX_TOKENS]})
    return features


def _texts(output: str) -> list[str]:
    """The text parts of a model's output messages (the raw text when it is not a message list)."""
    try:
        messages = json.loads(output)
    except ValueError:
        return [output]
    out = []
    for message in messages if isinstance(messages, list) else []:
        for part in message.get("parts", []) if isinstance(message, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("content"), str):
                out.append(part["content"])
    return out


def _row_support(texts: list[str], rows: list[set[str]], said: set[tuple[str, str]]) -> dict[str, float]:
    """Values this step states, clause by clause, against the records earlier tools returned. A clause
    that names a record (shares a word with it) and states a value that record does not hold or derive
    (as a sum or difference of two of its values) misquotes it; a value derivable only from another
    record was taken from the wrong row; a value no record holds came from nowhere. Misquotes an
    earlier step already made are not counted again: the step that first made them is the suspect."""
    misquoted = other_row = nowhere = 0
    for clause in (c for text in texts for c in _CLAUSE.split(text)):
        found = tokens(clause, keep=_FLAGS)
        words = {w for w in found if not _NUMBER.match(w) and w not in _FLAGS}
        values = {v for v in found if (_NUMBER.match(v) and len(v) > 1) or v in _FLAGS}
        named = [row for row in rows if row & words]
        for value in values:
            anywhere = [row for row in rows if _derivable(value, row)]
            if named and not any(_derivable(value, row) for row in named):
                key = (min(words & set().union(*named)), value)
                if key in said:
                    continue
                said.add(key)
                misquoted += 1
                other_row += bool(anywhere)
            elif not anywhere and _NUMBER.match(value):
                nowhere += 1
    return {"misquoted": math.log1p(misquoted), "other_row_values": math.log1p(other_row),
            "unsupported_numbers": math.log1p(nowhere), "checked_numbers": float(bool(rows))}


def _derivable(value: str, row: set[str]) -> bool:
    if value in row or not _NUMBER.match(value):
        return value in row
    target = float(value)
    numbers = [float(v) for v in _numbers(row)]
    return any(abs(a - b - target) < 1e-9 or abs(a + b - target) < 1e-9 for a in numbers for b in numbers)


def _hashed(step: Candidate, out: set[str], inp: set[str]) -> dict[str, Any]:
    words = sorted(w for w in out if not _NUMBER.match(w))[:_MAX_TOKENS]
    features = {f"out:{w}": 1 / math.sqrt(len(words)) for w in words}
    if step.kind == "tool":
        args = sorted(w for w in inp if not _NUMBER.match(w))[:_MAX_TOKENS]
        features.update({f"arg:{w}": 1 / math.sqrt(len(args)) for w in args})
    return features
