"""Versioned datasets from the store: rows of one kind, split by task, written as JSONL + Parquet + manifest.

``export(kind, store=..., output=...)`` writes ``train.jsonl``, ``eval.jsonl``, ``train.parquet``,
``eval.parquet`` and ``manifest.json``. Tool arguments and schemas differ from row to row, and
``datasets`` merges the keys of nested dicts across rows unless they are kept as JSON: the JSONL keeps
them as written (``load_dataset("json")`` infers its ``Json`` feature there), and the Parquet files
store every nested column as Arrow's JSON type, which ``datasets`` reads as the same feature. Both
load back exactly as written. :func:`build` returns the rows and manifest without writing (the HTTP API serves those).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from tracemill.collector.feedback.conflicts import current_feedback, parse_policy, settle
from tracemill.collector.store.store import using_store
from tracemill.errors import ConfigError
from tracemill.gc_paused import cyclic_gc_paused
from tracemill.trainer.assemble import BuildOptions, assemble
from tracemill.trainer.config_versions import row_versions, version_counts
from tracemill.trainer.rows import COLUMNS, Row, clean, encode_row, length_bias, split

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["DATASET_SCHEMA_VERSION", "EXPORT_KINDS", "ExportKind", "build", "export", "write_dataset"]

ExportKind = Literal["dpo", "kto", "sft", "stepwise", "openai", "flags"]
EXPORT_KINDS: tuple[str, ...] = ("dpo", "kto", "sft", "stepwise", "openai", "flags")
DATASET_SCHEMA_VERSION = 1
"""The version of the row shapes this module writes; it changes when a field changes meaning."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called while rows are built and written."""


def build(
    kind: str,
    *,
    store: Store | str,
    resolve: str | None = None,
    since: str | float | None = None,
    eval_fraction: float = 0.1,
    seed: int = 0,
    options: BuildOptions | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The train rows, eval rows and manifest of a dataset of ``kind``, read from ``store``."""
    train, held_out, manifest = _build_rows(kind, store=store, resolve=resolve, since=since,
                                            eval_fraction=eval_fraction, seed=seed, options=options)
    return [row.data for row in train], [row.data for row in held_out], manifest


def _build_rows(
    kind: str, *, store: Store | str, resolve: str | None, since: str | float | None, eval_fraction: float,
    seed: int, options: BuildOptions | None,
) -> tuple[list[Row], list[Row], dict[str, Any]]:
    if kind not in EXPORT_KINDS:
        raise ConfigError(f"dataset kind must be one of {', '.join(EXPORT_KINDS)} (got {kind!r})")
    if not 0 <= eval_fraction < 1:
        raise ConfigError(f"eval_fraction must be at least 0 and below 1 (got {eval_fraction})")
    policy = parse_policy(resolve)
    since_ns = _since_ns(since)
    options = BuildOptions(**{**(options.__dict__ if options else {}), "since_ns": since_ns})
    with cyclic_gc_paused():  # millions of small row objects: building 50k rows took seconds longer without
        with using_store(store) as opened:
            feedback = current_feedback(opened, since_ns=since_ns)
            kept, settled, conflicted = settle(feedback, policy)
            rows, dropped = assemble(kind, opened, kept, options)
            versions = row_versions(opened, rows)
            schema_version = max(_applied(opened), default=0)
            location = opened.location
        rows, hygiene = clean(kind, rows)
        dropped.update(hygiene)
        if conflicted:
            dropped["conflicting_feedback"] += conflicted
        train, held_out = split(rows, eval_fraction=eval_fraction, seed=seed)
        manifest = _manifest(kind, rows, train, held_out, dropped, settled, policy, since, eval_fraction, seed,
                             schema_version, location)
        manifest["config_versions"] = version_counts(rows, versions)
    return train, held_out, manifest


def export(
    kind: str,
    *,
    store: Store | str,
    output: str | os.PathLike[str],
    resolve: str | None = None,
    since: str | float | None = None,
    eval_fraction: float = 0.1,
    seed: int = 0,
    options: BuildOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the dataset of ``kind`` to the directory ``output`` and return its manifest.

    ``resolve`` settles conflicting feedback (``latest``, ``majority``, ``author:NAME[,NAME...]``;
    without it conflicted subjects are left out), ``since`` keeps feedback from that time on
    (``7d``, ``2h`` or an ISO-8601 time), ``eval_fraction`` of the tasks go to ``eval`` (by ``seed``).
    """
    train, held_out, manifest = _build_rows(kind, store=store, resolve=resolve, since=since,
                                            eval_fraction=eval_fraction, seed=seed, options=options)
    with cyclic_gc_paused():
        return _write(Path(output), train, held_out, manifest, progress)


def write_dataset(
    output: str | os.PathLike[str],
    train: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
    manifest: dict[str, Any],
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write rows made by :func:`build` (here or by a server) as the dataset files; return the manifest."""

    def rows(items: list[dict[str, Any]]) -> list[Row]:
        return [Row(item, "", "", "", "") for item in items]

    directory = Path(output)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with cyclic_gc_paused():
            return _write(directory, rows(train), rows(held_out), manifest, progress)
    except OSError as exc:  # a file in the way, a path under a file, a read-only place, a full disk
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(output) else ""
        raise ConfigError(f"cannot write the dataset to {str(output)!r}{where}: {exc.strerror or exc}; "
                          "choose a directory you can write to with --output") from None


def _write(
    directory: Path, train: list[Row], held_out: list[Row], manifest: dict[str, Any], progress: Progress | None
) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    total = len(train) + len(held_out)
    done = 0
    columns = COLUMNS[manifest["kind"]]
    for name, rows in (("train", train), ("eval", held_out)):
        with open(directory / f"{name}.jsonl", "wb") as handle:
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                handle.write(b"".join(_line(row) for row in chunk))
                done += len(chunk)
                if progress:
                    progress("write", done, total)
        _write_parquet(directory / f"{name}.parquet", rows, columns)
        if progress:
            progress("parquet", done, total)
    manifest = {**manifest, "files": ["train.jsonl", "eval.jsonl", "train.parquet", "eval.parquet"]}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


_CHUNK = 5000
_encode = msgspec.json.Encoder().encode


def _line(row: Row) -> bytes:
    """The row as one JSONL line, from the JSON of its fields (made once, see :func:`encode_row`)."""
    encode_row(row)
    return b"{" + b",".join(_key(key) + b":" + text for key, text in row.encoded.items()) + b"}\n"


@functools.lru_cache(maxsize=256)
def _key(name: str) -> bytes:
    return _encode(name)


def _write_parquet(path: Path, rows: list[Row], columns: dict[str, str]) -> None:
    """Parquet with nested columns as Arrow's JSON extension type, which ``datasets`` reads as its ``Json``
    feature: tool arguments and schemas that differ from row to row come back exactly, as from the JSONL."""
    from tracemill.deps import require

    require("pyarrow", extra="train", feature="Writing datasets as Parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "bool": pa.bool_(), "float": pa.float64(), "json": pa.json_(pa.string())}
    arrays = {}
    for key, kind in columns.items():
        if kind == "json":
            values: list[Any] = [None if row.data.get(key) is None else row.encoded[key].decode() for row in rows]
        else:
            values = [row.data.get(key) for row in rows]
        arrays[key] = pa.array(values, type=types[kind])
    features = {key: {"_type": "Json"} if kind == "json" else {"dtype": _DTYPES[kind], "_type": "Value"}
                for key, kind in columns.items()}
    table = pa.table(arrays).replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, path)


_DTYPES = {"string": "string", "bool": "bool", "float": "float64"}


def _manifest(
    kind: str, rows: list[Row], train: list[Row], held_out: list[Row], dropped: Counter[str], settled: int,
    policy: Any, since: Any, eval_fraction: float, seed: int, schema_version: int, location: str,
) -> dict[str, Any]:
    from tracemill import __version__

    return {
        "kind": kind,
        "format": _FORMATS[kind],
        "counts": dict(sorted(Counter(row.source for row in rows).items())),
        "splits": {"train": len(train), "eval": len(held_out)},
        "groups": {"train": len({row.group for row in train}), "eval": len({row.group for row in held_out})},
        "dropped": dict(sorted(dropped.items())),
        "conflicts_settled": settled,
        "length_bias": length_bias(rows),
        "content_hash": hashlib.sha256("".join(row.hash for row in train + held_out).encode()).hexdigest(),
        "filters": {"resolve": str(policy) if policy else None, "since": since, "eval_fraction": eval_fraction,
                    "seed": seed, "split_by": "task, else conversation, else trace"},
        "source": {"store": location, "schema_version": schema_version},
        "tracemill_version": __version__,
        "dataset_schema_version": DATASET_SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
    }


_FORMATS = {
    "dpo": "TRL conversational preference: prompt, chosen, rejected, tools",
    "kto": "TRL conversational unpaired preference: prompt, completion, label, tools",
    "sft": "TRL conversational language modeling: messages, tools",
    "stepwise": "TRL stepwise supervision: prompt, completions, labels",
    "openai": "OpenAI fine-tuning chat JSONL: messages, tools",
    "flags": "review dataset: one row per miner flag with the decisive step",
}


def _since_ns(since: str | float | None) -> int | None:
    if since is None or since == "":
        return None
    from tracemill.collector.store.query import parse_since

    return int(parse_since(since) * 1e9)


def _applied(store: Store) -> set[int]:
    from tracemill.collector.store.schema import applied_versions

    return applied_versions(store)
