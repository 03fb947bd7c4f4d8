"""Exports in the `tracemill export` contract (train.jsonl, eval.jsonl, manifest.json), written for trainer tests.

The rows are the ones an agent that sometimes gives up instead of calling its tool would produce, with people's
corrections: asked for the weather or the time of a city, the right answer is a call of `get_weather` or
`get_time`; the wrong one is a refusal in prose. Refusals are about as long as the calls in tokens, some shorter,
some longer, so an untrained model prefers either side about half the time, and a trained one must prefer the call.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

CITIES = ["Rome", "Paris", "Oslo", "Lima", "Cairo", "Delhi", "Tokyo", "Quito", "Dakar", "Hanoi", "Bern", "Riga",
          "Sofia", "Kyiv", "Minsk", "Baku", "Doha", "Male", "Suva", "Apia"]
QUESTIONS = [("weather", "get_weather"), ("time", "get_time")]
TOOLS = [{"type": "function", "function": {"name": name, "description": f"The {what} of a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}
         for what, name in QUESTIONS]
REFUSALS = [
    "Sorry, I do not know the {what} in {city} today, I am afraid.",
    "I cannot check the {what} in {city} for you today, sorry.",
    "Sorry, I have no way to find the {what} in {city} for you right now, please ask me later.",
    "I am afraid I do not know what the {what} in {city} is like at the moment.",
]
SYSTEM = "Answer with a tool."


def prompt(what: str, city: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"What is the {what} in {city}?"}]


def call(name: str, city: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": name, "arguments": {"city": city}}}]}]


def refusal(index: int, what: str, city: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": REFUSALS[index % len(REFUSALS)].format(what=what, city=city)}]


def dpo_rows() -> list[dict[str, Any]]:
    rows = [{"prompt": prompt(what, city), "chosen": call(name, city), "rejected": refusal(i + j, what, city),
             "tools": TOOLS, "source": "correction"}
            for i, city in enumerate(CITIES) for j, (what, name) in enumerate(QUESTIONS)]
    random.Random(0).shuffle(rows)
    return rows


def kto_rows() -> list[dict[str, Any]]:
    rows = []
    for row in dpo_rows():
        rows.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True, "tools": row["tools"]})
        rows.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False, "tools": row["tools"]})
    return rows


def sft_rows() -> list[dict[str, Any]]:
    return [{"messages": [*row["prompt"], *row["chosen"],
                          {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                          {"role": "assistant", "content": "Done."}],
             "tools": row["tools"]} for row in dpo_rows()]


ROWS = {"dpo": dpo_rows, "kto": kto_rows, "sft": sft_rows}


def texts() -> list[str]:
    """What the tiny tokenizer trains on: every row of every kind, as JSON."""
    return [json.dumps(row) for make in ROWS.values() for row in make()]


def write_export(directory: Path, kind: str, train: list[dict[str, Any]] | None = None,
                 held_out: list[dict[str, Any]] | None = None, *, manifest_kind: str | None = None) -> Path:
    """An export directory of ``kind``; by default 80% of the rows train and the rest are held out."""
    if train is None or held_out is None:
        rows = ROWS[kind]()
        cut = len(rows) * 4 // 5
        train, held_out = rows[:cut], rows[cut:]
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("eval", held_out)):
        with (directory / f"{name}.jsonl").open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
    manifest = {"kind": manifest_kind or kind, "counts": {"rows": len(train) + len(held_out)},
                "content_hash": "test", "splits": {"train": len(train), "eval": len(held_out)}}
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return directory
