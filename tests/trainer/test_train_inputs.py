"""`tracemill train` on broken inputs: one error line and exit 1, before any model or tokenizer loads,
and a hub model name on a machine that cannot reach the hub fails at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trainer_exports

from tracemill.errors import ConfigError
from tracemill.trainer.train_inputs import resolve_model


def _train(data: Path, model: str | Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return subprocess.run([sys.executable, "-m", "tracemill.cli", "train", "dpo", str(data), "--model", str(model),
                           "--output", str(out)], capture_output=True, text=True, timeout=300,
                          env={**clean, "COLUMNS": "200", **env})


def _one_error_line(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    assert words in lines[0], lines[0]


def _rewrite_train(data: Path, content: bytes) -> None:
    (data / "train.jsonl").write_bytes(content)


@pytest.mark.parametrize(("broken", "words"), [
    ("byte 0xff", "is not JSON: 'utf-8' codec can't decode byte 0xff"),
    ("nested 5000 deep", "is nested more than"),
    ("manifest kind a list", "holds a ['dpo'] export, not 'dpo'"),
    ("prompt a number", "prompt must be a text or a list of messages"),
    ("chosen messages without role", "chosen must be a text or a list of messages"),
    ("prompt text after messages", "prompt is a str where the rows before have a list"),
])
def test_broken_export_prints_one_error_line_before_any_model_loads(tiny_model, tmp_path, broken, words):
    data = trainer_exports.write_export(tmp_path / "dpo", "dpo")
    rows = trainer_exports.dpo_rows()
    if broken == "byte 0xff":
        _rewrite_train(data, b'{"prompt": "\xff"}\n')
    elif broken == "nested 5000 deep":
        _rewrite_train(data, b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}\n")
    elif broken == "manifest kind a list":
        manifest = json.loads((data / "manifest.json").read_text())
        (data / "manifest.json").write_text(json.dumps({**manifest, "kind": ["dpo"]}))
    elif broken == "prompt a number":
        _rewrite_train(data, json.dumps({**rows[0], "prompt": 7}).encode() + b"\n")
    elif broken == "chosen messages without role":
        _rewrite_train(data, json.dumps({**rows[0], "chosen": [{"content": "hi"}]}).encode() + b"\n")
    else:
        second = {**rows[1], "prompt": "plain text"}
        _rewrite_train(data, (json.dumps(rows[0]) + "\n" + json.dumps(second) + "\n").encode())
    done = _train(data, tiny_model, tmp_path / "out")
    _one_error_line(done, words)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def listening_hub() -> Iterator[str]:
    """An address that accepts connections: a reachable hub, as far as a connection test can tell."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_hub_model_while_offline_fails_at_once(tmp_path, variable):
    data = trainer_exports.write_export(tmp_path / "dpo", "dpo")
    done = _train(data, "someone/not-cached-model", tmp_path / "out", **{variable: "1"})
    _one_error_line(done, f"is not a local directory and not in the hub cache, and {variable} is set")


def test_hub_model_with_no_route_to_the_hub_fails_at_once(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on once this closes
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    with pytest.raises(ConfigError, match=r"the model hub \(127.0.0.1\) cannot be reached"):
        resolve_model("someone/not-cached-model")


def test_hub_model_is_left_to_the_hub_when_it_answers(monkeypatch, listening_hub):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", listening_hub)
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct").on_hub
