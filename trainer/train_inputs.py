"""The inputs of a training run, checked before any model loads: the exported dataset and the model to start from.

Every problem found here is a :class:`ConfigError` that names the file or value and how to fix it, so a wrong
directory costs a second, not a model load. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tracemill.collector.feedback.strict_json import loads_strict
from tracemill.errors import ConfigError

# Columns TRL reads from each kind of export (SFT takes either shape).
REQUIRED_COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "dpo": (("prompt", "chosen", "rejected"),),
    "kto": (("prompt", "completion", "label"),),
    "sft": (("messages",), ("prompt", "completion")),
}
# A hub model id: "name" or "owner/name" (what `from_pretrained` accepts besides a directory).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


@dataclass(frozen=True)
class Export:
    """A checked export directory: its split files, manifest and row counts."""

    directory: Path
    kind: str
    manifest: dict[str, Any]
    manifest_sha256: str
    train_rows: int
    eval_rows: int

    @property
    def train_file(self) -> Path:
        return self.directory / "train.jsonl"

    @property
    def eval_file(self) -> Path:
        return self.directory / "eval.jsonl"


@dataclass(frozen=True)
class ModelSource:
    """Where the starting model comes from: a local directory, or a hub id the user named."""

    name: str
    path: Path | None

    @property
    def on_hub(self) -> bool:
        return self.path is None

    @property
    def load_from(self) -> str:
        return str(self.path) if self.path is not None else self.name


def read_export(kind: str, data_dir: str | os.PathLike[str]) -> Export:
    """Check that ``data_dir`` is a ``tracemill export`` of ``kind`` with non-empty train and held-out splits."""
    directory = Path(data_dir).expanduser().resolve()
    fix = f"write one with: tracemill export {kind} --store DSN -o {data_dir}"
    if not directory.is_dir():
        raise ConfigError(f"data directory {str(data_dir)!r} does not exist; {fix}")
    manifest_file = directory / "manifest.json"
    if not manifest_file.is_file():
        raise ConfigError(f"{str(data_dir)!r} has no manifest.json, so it is not a tracemill export; {fix}")
    raw = manifest_file.read_bytes()
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{manifest_file} is not valid JSON ({exc}); export the data again") from None
    found = manifest.get("kind") if isinstance(manifest, dict) else None
    if found != kind:
        hint = (f"train it with `tracemill train {found}`, or " if isinstance(found, str) and found in REQUIRED_COLUMNS
                else "")
        raise ConfigError(f"{str(data_dir)!r} holds a {found!r} export, not {kind!r}; {hint}{fix}")
    train_rows = _check_split(directory / "train.jsonl", kind, "train", fix)
    eval_rows = _check_split(directory / "eval.jsonl", kind, "held-out (eval)", fix)
    return Export(directory, kind, manifest, hashlib.sha256(raw).hexdigest(), train_rows, eval_rows)


def _check_split(path: Path, kind: str, split: str, fix: str) -> int:
    """Count the rows of one split, checking that each is a JSON object with the columns ``kind`` needs."""
    if not path.is_file():
        what = "no held-out split" if split.startswith("held-out") else f"no {split} split"
        raise ConfigError(f"the export has {what}: {path} is missing; the before/after comparison needs one, so "
                          f"export with a held-out fraction above 0; {fix}")
    rows = 0
    shapes: dict[str, type] = {}
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                row = loads_strict(raw, what=f"line {number} of {path}")
            except ConfigError as exc:
                raise ConfigError(f"{exc}; export the data again") from None
            _check_row(row, kind, f"line {number} of {path}", shapes)
            rows += 1
    if rows == 0:
        raise ConfigError(f"the {split} split is empty: {path} has no rows; record more feedback, or export with "
                          f"a different held-out fraction; {fix}")
    return rows


def _check_row(row: Any, kind: str, where: str, shapes: dict[str, type]) -> None:
    """One row has the columns ``kind`` needs, each a text or a list of chat messages, of the same type as the
    rows before it (``datasets`` cannot cast a column that mixes types), and a KTO label is a boolean."""
    if not isinstance(row, dict) or not any(all(c in row for c in cols) for cols in REQUIRED_COLUMNS[kind]):
        wanted = " or ".join(str(list(cols)) for cols in REQUIRED_COLUMNS[kind])
        got = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise ConfigError(f"{where} is not a {kind} row: it needs the columns {wanted} (got {got})")
    if kind == "kto" and not isinstance(row["label"], bool):
        raise ConfigError(f"{where}: a KTO label is true or false (got {row['label']!r})")
    for column in ("prompt", "chosen", "rejected", "completion", "messages"):
        if column not in row:
            continue
        value = row[column]
        messages = isinstance(value, list) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in value)
        if not (isinstance(value, str) or messages):
            raise ConfigError(f"{where}: {column} must be a text or a list of messages with a role "
                              f"(got {json.dumps(value)[:80]}); export the data again")
        if shapes.setdefault(column, type(value)) is not type(value):
            raise ConfigError(f"{where}: {column} is a {type(value).__name__} where the rows before have a "
                              f"{shapes[column].__name__}; every row of a split has the same shape")


def resolve_model(model: str) -> ModelSource:
    """A local model directory, or a hub id; a path that does not exist is an error, not a download."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model directory {model!r} has no config.json; pass a directory written by "
                              f"save_pretrained, or a hub model id")
        return ModelSource(model, path.resolve())
    looks_like_path = model.startswith((".", "~", os.sep)) or model.endswith(os.sep) or model.count("/") > 1
    if looks_like_path or not _HUB_ID.fullmatch(model):
        raise ConfigError(f"model path {model!r} does not exist; pass a directory written by save_pretrained, "
                          f"or a hub model id such as 'Qwen/Qwen2.5-0.5B-Instruct'")
    _check_hub_reachable(model)
    return ModelSource(model, None)


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _check_hub_reachable(model: str) -> None:
    """Fail at once when a hub model is neither cached nor downloadable (offline, or no route to the hub),
    instead of after the hub client's retries."""
    if _in_hub_cache(model):
        return
    offline = [name for name in _OFFLINE_VARS if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")]
    fix = "pass a local directory written by save_pretrained (e.g. `--model ./my-model`)"
    if offline:
        raise ConfigError(f"model {model!r} is not a local directory and not in the hub cache, and {offline[0]} "
                          f"is set, so nothing may be downloaded; {fix}")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlsplit(endpoint).hostname or "huggingface.co"
    port = urlsplit(endpoint).port or (443 if endpoint.startswith("https") else 80)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"model {model!r} is not a local directory and the model hub ({host}) cannot be reached "
                          f"({exc.strerror or exc}); {fix}, or connect this machine to the network") from None


def _in_hub_cache(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


@contextlib.contextmanager
def hub_access(source: ModelSource) -> Iterator[None]:
    """Keep the hub out of a run whose model is local (``HF_HUB_OFFLINE=1``); a named hub model may download."""
    if source.on_hub:
        yield
        return
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


def load_tokenizer(source: ModelSource) -> Any:
    """The model's tokenizer, which must carry a chat template (the exports are conversational)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.load_from, local_files_only=not source.on_hub)
    except (OSError, ValueError) as exc:
        where = "from the hub" if source.on_hub else f"from {source.load_from}"
        raise ConfigError(f"could not load the tokenizer of model {source.name!r} {where}: {exc}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"the tokenizer of model {source.name!r} has no chat template, and the exported rows are "
                          f"conversations; use a chat (instruct) model, or set tokenizer.chat_template and "
                          f"save_pretrained it (docs/training.md)")
    return tokenizer
