"""Dataset rows and their hygiene: content hashes, duplicates, no-op pairs, length bias, the split.

A :class:`Row` is what a builder makes: the dict written to the files, plus where it came from
(source, trace, span) and the group a train/eval split keeps together (the task, else the
conversation, else the trace), so no task is in both splits.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = ["COLUMNS", "TRAINING_FIELDS", "Row", "clean", "content_hash", "encode_row", "length_bias", "split"]

TRAINING_FIELDS = {
    "dpo": ("prompt", "chosen", "rejected", "tools"),
    "kto": ("prompt", "completion", "label", "tools"),
    "sft": ("messages", "tools"),
    "openai": ("messages", "tools"),
    "stepwise": ("prompt", "completions", "labels"),
    "flags": ("trace_id", "span_id", "detector"),
}
"""The fields that make two rows the same example (metadata such as trace ids does not)."""

COLUMNS: dict[str, dict[str, str]] = {
    "dpo": {"prompt": "json", "chosen": "json", "rejected": "json", "tools": "json", "source": "string",
            "trace_id": "string", "span_id": "string"},
    "kto": {"prompt": "json", "completion": "json", "label": "bool", "tools": "json", "source": "string",
            "trace_id": "string", "span_id": "string"},
    "sft": {"messages": "json", "tools": "json", "source": "string", "trace_id": "string", "span_id": "string"},
    "openai": {"messages": "json", "tools": "json"},
    "stepwise": {"prompt": "string", "completions": "json", "labels": "json", "source": "string",
                 "trace_id": "string", "span_id": "string"},
    "flags": {"trace_id": "string", "span_id": "string", "detector": "string", "detector_version": "string",
              "category": "string", "severity": "string", "confidence": "float", "evidence": "string",
              "review": "string", "prompt": "json", "output": "json", "tools": "json", "source": "string"},
}
"""Each kind's columns and how Parquet stores them (``json``: Arrow's JSON type, read by ``datasets`` as ``Json``)."""

_encode = msgspec.json.Encoder().encode


@dataclass
class Row:
    data: dict[str, Any]
    source: str
    trace_id: str
    span_id: str
    group: str
    hash: str = field(default="")
    encoded: dict[str, bytes] = field(default_factory=dict)
    """Each field of ``data`` as JSON, made once by :func:`encode_row` for the hash, the bias and the files."""


def encode_row(row: Row) -> None:
    """Fill ``row.encoded`` (every field as JSON), once."""
    if not row.encoded:
        row.encoded = {key: _encode(value) for key, value in row.data.items()}


def content_hash(kind: str, row: Row) -> str:
    """SHA-256 of the row's training fields as JSON. The builders make every dict with its keys in one order,
    so equal examples encode equally without the cost of sorting keys."""
    encode_row(row)
    return hashlib.sha256(b"\x1e".join(row.encoded.get(name, b"null") for name in TRAINING_FIELDS[kind])).hexdigest()


def clean(kind: str, rows: Iterable[Row]) -> tuple[list[Row], Counter[str]]:
    """Rows without no-op pairs (chosen equal to rejected) and duplicates, and what was dropped why."""
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    kept = []
    for row in rows:
        if kind == "dpo" and row.data["chosen"] == row.data["rejected"]:
            dropped["chosen_equals_rejected"] += 1
            continue
        row.hash = content_hash(kind, row)
        if row.hash in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(row.hash)
        kept.append(row)
    return kept, dropped


def length_bias(rows: Sequence[Row]) -> dict[str, Any] | None:
    """How much longer chosen answers are than rejected ones (bytes of their JSON), for DPO rows:
    a model can learn "longer is better" from a biased set instead of what reviewers meant."""
    if not rows or "chosen" not in rows[0].data:
        return None
    for row in rows:
        encode_row(row)
    chosen = [len(row.encoded["chosen"]) for row in rows]
    rejected = [len(row.encoded["rejected"]) for row in rows]
    longer = sum(c > r for c, r in zip(chosen, rejected, strict=True))
    return {
        "chosen_mean_bytes": round(sum(chosen) / len(rows), 1),
        "rejected_mean_bytes": round(sum(rejected) / len(rows), 1),
        "chosen_longer_fraction": round(longer / len(rows), 4),
    }


def split(rows: Sequence[Row], *, eval_fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Train and eval rows, whole groups on one side: about ``eval_fraction`` of the groups (at least
    one and never all, when there are two or more) go to eval, chosen by ``seed``."""
    groups = sorted({row.group for row in rows})
    random.Random(seed).shuffle(groups)
    count = round(eval_fraction * len(groups))
    if eval_fraction > 0 and len(groups) >= 2:
        count = min(max(count, 1), len(groups) - 1)
    elif len(groups) < 2:
        count = 0
    held_out = set(groups[:count])
    return [row for row in rows if row.group not in held_out], [row for row in rows if row.group in held_out]
