"""Conflicting feedback: authors who disagree about one thing, and the policies that settle them.

Feedback is keyed by author, so two reviewers never overwrite each other; this module finds where
they disagree and, for export, settles it only when asked. A *subject* is what feedback judges:
the correction of one span, a named label or score of one span (or trace), the outcome of a trace,
the order of two spans in a preference, the review of one flag, the decisive step of a trace.
Disagreement means different
corrections, opposite labels (``good``/``bad`` and their synonyms), scores or outcomes more than
:data:`SCORE_CONFLICT_GAP` apart, preferences in both directions, or decisive marks on different spans.

Policies (``--resolve``): ``latest`` keeps the newest row, ``majority`` the opinion most authors
hold, one vote per distinct author (names normalised; on a server with reviewer tokens the server, not
the writer, says who the author is) and a tie settles nothing, ``author:NAME[,NAME...]`` the first
listed author who judged the subject. Without a policy a conflicted subject is left out of datasets;
either way it is counted.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from tracemill.collector.feedback.reviewers import normalize_author
from tracemill.collector.store.schema import FEEDBACK_TABLE
from tracemill.errors import ConfigError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = [
    "LABEL_POLARITY",
    "SCORE_CONFLICT_GAP",
    "ResolvePolicy",
    "current_feedback",
    "find_conflicts",
    "parse_policy",
    "settle",
]

SCORE_CONFLICT_GAP = 0.5
"""Scores (and rewards) of one subject further apart than this are a conflict."""

LABEL_POLARITY = {
    "good": True, "thumbs_up": True, "positive": True, "correct": True, "confirmed": True,
    "bad": False, "thumbs_down": False, "negative": False, "incorrect": False, "false_positive": False,
}  # fmt: skip
"""Labels with a direction; ``flag_review`` labels count too (confirmed: the flag is right)."""

_COLUMNS = "TraceId, SpanId, Name, Author, Kind, Value, Score, Label, Comment, CreatedAt, UpdatedAt, WrittenBy"


@dataclass(frozen=True)
class ResolvePolicy:
    """How conflicting feedback is settled: ``latest``, ``majority`` or ``authors`` in order of trust."""

    kind: str
    authors: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"author:{','.join(self.authors)}" if self.kind == "author" else self.kind


def parse_policy(text: str | None) -> ResolvePolicy | None:
    """``latest``, ``majority`` or ``author:NAME[,NAME...]`` (None or '' for no policy)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text in ("latest", "majority"):
        return ResolvePolicy(text)
    if text.startswith("author:"):
        authors = tuple(name.strip() for name in text[len("author:") :].split(",") if name.strip())
        if authors:
            return ResolvePolicy("author", authors)
    raise ConfigError(f"resolve must be latest, majority or author:NAME[,NAME...] (got {text!r})")


def current_feedback(store: Store, *, since_ns: int | None = None, kinds: Sequence[str] | None = None) -> list[dict]:
    """Every current feedback row (tombstones left out), oldest first, with its value parsed."""
    conditions: list[str] = ["IsDeleted = 0"]
    params: dict[str, Any] = {}
    if since_ns is not None:
        conditions.append("UpdatedAt >= fromUnixTimestamp64Nano({since:Int64})")
        params["since"] = since_ns
    if kinds:
        conditions.append("Kind IN {kinds:Array(String)}")
        params["kinds"] = list(kinds)
    rows = store.query(
        f"SELECT {_COLUMNS} FROM {FEEDBACK_TABLE} FINAL WHERE {' AND '.join(conditions)} "
        "ORDER BY UpdatedAt, TraceId, SpanId, Name, Author",
        params,
    ).result_rows
    keys = ("trace_id", "span_id", "name", "author", "kind", "value", "score", "label", "comment", "created_at",
            "updated_at", "written_by")  # fmt: skip
    decode = msgspec.json.Decoder().decode  # 100k corrections: several times faster than json.loads
    out = []
    for row in rows:
        item = dict(zip(keys, row, strict=True))
        item["value"] = decode(item["value"]) if item["value"] else None
        item["author"] = normalize_author(item["author"])  # rows written before names were normalised
        if item["kind"] == "outcome" and item["score"] is None and isinstance(item["value"], dict):
            item["score"] = _outcome_score(item["value"])  # written before outcomes carried their score
        out.append(item)
    return out


def _outcome_score(value: Mapping[str, Any]) -> float | None:
    if isinstance(value.get("success"), bool):
        return 1.0 if value["success"] else 0.0
    reward = value.get("reward")
    return float(reward) if isinstance(reward, (int, float)) and not isinstance(reward, bool) else None


def subject(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a feedback row judges; rows of one subject are compared with each other."""
    kind, trace_id, span_id = row["kind"], row["trace_id"], row["span_id"]
    if kind == "preference":
        value = row["value"] or {}
        pair = sorted([(trace_id, value.get("better", span_id)), (value.get("worse_trace", trace_id),
                                                                   value.get("worse", ""))])
        return ("preference", *pair[0], *pair[1])
    if kind == "correction":
        return ("correction", trace_id, span_id)
    if kind in ("outcome", "decisive"):
        return (kind, trace_id)
    if kind == "label" and row["name"] == "flag_review":
        return ("flag_review", trace_id, span_id, (row["value"] or {}).get("detector", ""))
    return (kind, trace_id, span_id, row["name"])


def opinion(row: Mapping[str, Any]) -> Any:
    """A comparable form of what a row says: corrections by content, labels by direction,
    scores and outcomes by side of 0.5, preferences by the better span."""
    kind = row["kind"]
    if kind == "correction":
        return json.dumps(row["value"], sort_keys=True)
    if kind == "label":
        return LABEL_POLARITY.get(row["label"].strip().lower(), row["label"])
    if kind in ("score", "outcome"):
        return row["score"] is not None and row["score"] >= 0.5
    if kind == "preference":
        return (row["trace_id"], (row["value"] or {}).get("better", row["span_id"]))
    if kind == "decisive":
        return row["span_id"]
    return json.dumps([row["value"], row["label"], row["score"]], sort_keys=True)


def _disagree(rows: Sequence[Mapping[str, Any]]) -> bool:
    if len({row["author"] for row in rows}) < 2:  # one author cannot conflict with themselves
        return False
    if rows[0]["kind"] in ("score", "outcome"):
        scores = [row["score"] for row in rows if row["score"] is not None]
        return bool(scores) and max(scores) - min(scores) > SCORE_CONFLICT_GAP
    return len({opinion(row) for row in rows}) > 1


def _groups(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], list[Mapping[str, Any]]]:
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[subject(row)].append(row)
    return groups


def find_conflicts(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The subjects whose authors disagree: ``{"subject": {...}, "feedback": [rows]}``, in row order."""
    out = []
    for key, members in _groups(rows).items():
        if _disagree(members):
            out.append({"subject": _describe_subject(key), "feedback": list(members)})
    return out


def settle(
    rows: Sequence[Mapping[str, Any]], policy: ResolvePolicy | None
) -> tuple[list[Mapping[str, Any]], int, int]:
    """The rows to build datasets from, how many conflicted subjects were settled and how many left out.

    Subjects without disagreement keep all their rows; a conflicted one keeps the row the policy
    picks, or none (no policy, a majority tie, none of the trusted authors).
    """
    kept: list[Mapping[str, Any]] = []
    settled = dropped = 0
    for members in _groups(rows).values():
        if not _disagree(members):
            kept.extend(members)
            continue
        chosen = _pick(members, policy) if policy else None
        if chosen is None:
            dropped += 1
        else:
            settled += 1
            kept.append(chosen)
    return kept, settled, dropped


def _pick(rows: Sequence[Mapping[str, Any]], policy: ResolvePolicy) -> Mapping[str, Any] | None:
    def latest(candidates: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
        return max(candidates, key=lambda row: row["updated_at"])

    if policy.kind == "latest":
        return latest(rows)
    if policy.kind == "majority":  # one vote per author (their latest row), however many rows they wrote
        votes = {row["author"]: row for row in sorted(rows, key=lambda row: row["updated_at"])}
        counts = Counter(opinion(row) for row in votes.values()).most_common()
        if len(counts) > 1 and counts[0][1] == counts[1][1]:
            return None
        return latest(row for row in votes.values() if opinion(row) == counts[0][0])
    for author in map(normalize_author, policy.authors):
        theirs = [row for row in rows if row["author"] == author]
        if theirs:
            return latest(theirs)
    return None


def _describe_subject(key: tuple[Any, ...]) -> dict[str, Any]:
    kind = key[0]
    if kind == "preference":
        return {"kind": kind, "spans": [{"trace_id": key[1], "span_id": key[2]}, {"trace_id": key[3],
                                                                                  "span_id": key[4]}]}
    if kind in ("outcome", "decisive"):
        return {"kind": kind, "trace_id": key[1], "span_id": ""}
    if kind == "correction":
        return {"kind": kind, "trace_id": key[1], "span_id": key[2]}
    if kind == "flag_review":
        return {"kind": kind, "trace_id": key[1], "span_id": key[2], "detector": key[3]}
    return {"kind": kind, "trace_id": key[1], "span_id": key[2], "name": key[3]}


def list_conflicts(store: Store, *, trace_id: str | None = None) -> list[dict[str, Any]]:
    """The conflicts in the store as JSON-ready dicts (for the API, the CLI and the façade)."""
    from tracemill.collector.feedback.feedback import public_row
    from tracemill.collector.store.reads import resolve_trace_id

    rows = current_feedback(store)
    if trace_id:
        wanted = resolve_trace_id(store, trace_id)
        rows = [row for row in rows if row["trace_id"] == wanted or wanted in _traces_of(row)]
    return [{**conflict, "feedback": [public_row(row) for row in conflict["feedback"]]}
            for conflict in find_conflicts(rows)]


def _traces_of(row: Mapping[str, Any]) -> set[str]:
    value = row["value"] if isinstance(row["value"], Mapping) else {}
    return {row["trace_id"], value.get("worse_trace", row["trace_id"])}
