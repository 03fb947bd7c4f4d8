"""`tracemill train`: TRL on an export, end to end on the CPU with the tiny model, and its refusals of bad input.

The learnable set is the one in trainer_exports: tool calls preferred over refusals of about the same length.
The DPO tests (full and LoRA) make it the whole way: an agent traced into a chDB store, its refusals corrected
with tracemill.feedback, `tracemill export dpo`, `tracemill train dpo`. The other tests write the same rows in the
export's format directly. A tiny random model needs a learning rate far above a real model's, so the tests pass
their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trainer_exports

import tracemill
from tracemill.errors import ConfigError
from tracemill.trainer.heldout import auroc
from tracemill.trainer.train_inputs import resolve_model

FAST = {"lr": 5e-3, "seed": 0, "progress": False}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracemill.cli", "train", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=600)


@pytest.fixture(scope="module")
def dpo_export(tmp_path_factory) -> Path:
    """Trace the agent into a chDB store, correct its refusals with tracemill.feedback, `tracemill export dpo`;
    each step in a process of its own (chDB allows one store directory per process)."""
    tmp_path = tmp_path_factory.mktemp("from-store")
    dsn = f"chdb://{tmp_path / 'store'}"
    traced = subprocess.run([sys.executable, str(Path(__file__).with_name("agent_traces.py")), dsn],
                            capture_output=True, text=True, timeout=300)
    assert traced.returncode == 0 and traced.stdout.split() == ["40"], traced.stderr[-3000:]
    exported = subprocess.run([sys.executable, "-m", "tracemill.cli", "export", "dpo", "--store", dsn, "-o",
                               str(tmp_path / "dpo"), "--eval-fraction", "0.2"], capture_output=True, text=True,
                              timeout=300)
    assert exported.returncode == 0, exported.stderr[-3000:]
    return tmp_path / "dpo"


def test_dpo_from_the_cli_makes_held_out_chosen_answers_more_likely(tiny_model, dpo_export, tmp_path):
    data = dpo_export
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["kind"] == "dpo" and manifest["counts"] == {"correction": 40}
    assert manifest["splits"] == {"train": 32, "eval": 8}
    out = tmp_path / "run"
    done = _cli("dpo", str(data), "--model", str(tiny_model), "--output", str(out), "--epochs", "6",
                "--lr", "5e-3", "--seed", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    before, after = report["before"], report["after"]
    assert before["pairs"] == after["pairs"] == 8
    assert before["reward_margin"] == 0.0  # the reference is the model before training
    assert after["preference_accuracy"] >= 0.9
    assert after["preference_accuracy"] >= before["preference_accuracy"] + 0.3
    assert after["reward_margin"] > 1.0
    assert "preference accuracy" in done.stdout and "reward margin" in done.stdout
    assert report["model"] == {"name": str(tiny_model), "source": "local", "saved": "model"}
    assert report["device"] == "cpu" and report["train"]["steps"] == 24
    assert report["options"]["trl"]["learning_rate"] == 5e-3
    assert report["data"]["content_hash"] == manifest["content_hash"] and len(report["data"]["manifest_sha256"]) == 64
    assert report["data"]["manifest"] == manifest and report["data"]["config_versions"] == manifest["config_versions"]
    assert json.loads((out / "dataset_manifest.json").read_text()) == manifest
    assert {"torch", "trl", "transformers"} <= set(report["versions"])
    assert report["history"] and "rewards/margins" in report["history"][-1]
    assert (out / "training.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()


def test_dpo_with_lora_saves_an_adapter_that_learned_the_preference(tiny_model, dpo_export, tmp_path):
    report = tracemill.train("dpo", dpo_export, model=str(tiny_model), output=tmp_path / "run", lora=True, epochs=6,
                             **FAST)
    assert report["after"]["preference_accuracy"] >= 0.9
    assert report["after"]["preference_accuracy"] >= report["before"]["preference_accuracy"] + 0.3
    assert report["model"]["saved"] == "lora_adapter"
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_kto_runs_and_reports_desirable_against_undesirable(tiny_model, tmp_path):
    data = trainer_exports.write_export(tmp_path / "kto", "kto")
    report = tracemill.train("kto", data, model=str(tiny_model), output=tmp_path / "run", epochs=2, **FAST)
    before, after = report["before"], report["after"]
    assert before["desirable"] + before["undesirable"] == 16 and before["paired"] == 8
    assert before["reward_margin"] == 0.0
    assert after["reward_margin"] > 0
    assert after["preference_accuracy"] >= 0.9
    assert after["preference_accuracy"] >= before["preference_accuracy"] + 0.3
    assert after["auroc"] >= before["auroc"]
    assert after["desirable_logp_per_token"] - after["undesirable_logp_per_token"] > \
        before["desirable_logp_per_token"] - before["undesirable_logp_per_token"]
    assert set(after) >= {"preference_accuracy", "auroc", "reward_margin"}
    assert (tmp_path / "run" / "training.png").is_file()


def test_sft_runs_and_lowers_the_held_out_loss(tiny_model, tmp_path):
    data = trainer_exports.write_export(tmp_path / "sft", "sft")
    report = tracemill.train("sft", data, model=str(tiny_model), output=tmp_path / "run", epochs=2, **FAST)
    assert report["after"]["loss"] < report["before"]["loss"]
    assert report["before"]["rows"] == 8
    assert json.loads((tmp_path / "run" / "report.json").read_text())["after"] == report["after"]


# Bad input: each is refused with a message that names the problem, before any model loads (the output
# directory is never created).

def _refused(tmp_path: Path, kind: str, data: Path, model: str | Path, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        tracemill.train(kind, data, model=str(model), output=tmp_path / "never", **FAST)
    assert not (tmp_path / "never").exists()


def test_export_of_another_kind_raises(tiny_model, tmp_path):
    data = trainer_exports.write_export(tmp_path / "kto", "kto")
    _refused(tmp_path, "dpo", data, tiny_model, r"holds a 'kto' export, not 'dpo'; train it with `tracemill train kto`")


def test_empty_train_split_raises(tiny_model, tmp_path):
    data = trainer_exports.write_export(tmp_path / "dpo", "dpo", [], trainer_exports.dpo_rows()[:4])
    _refused(tmp_path, "dpo", data, tiny_model, r"the train split is empty: .*train.jsonl has no rows")


def test_missing_or_empty_held_out_split_raises(tiny_model, tmp_path):
    data = trainer_exports.write_export(tmp_path / "dpo", "dpo", trainer_exports.dpo_rows()[:4], [])
    _refused(tmp_path, "dpo", data, tiny_model, r"the held-out \(eval\) split is empty")
    (data / "eval.jsonl").unlink()
    _refused(tmp_path, "dpo", data, tiny_model, r"the export has no held-out split: .*eval.jsonl is missing")


def test_directory_without_manifest_or_rows_of_the_wrong_shape_raises(tiny_model, tmp_path):
    _refused(tmp_path, "dpo", tmp_path / "nowhere", tiny_model, r"data directory .* does not exist")
    data = trainer_exports.write_export(tmp_path / "dpo", "dpo", trainer_exports.kto_rows()[:2],
                                        trainer_exports.kto_rows()[:2], manifest_kind="dpo")
    _refused(tmp_path, "dpo", data, tiny_model, r"line 1 of .*train.jsonl is not a dpo row: it needs the columns "
                                                r"\['prompt', 'chosen', 'rejected'\]")
    (data / "manifest.json").unlink()
    _refused(tmp_path, "dpo", data, tiny_model, r"has no manifest.json, so it is not a tracemill export")


def test_model_path_that_does_not_exist_raises_instead_of_downloading(tiny_model, tmp_path):
    data = trainer_exports.write_export(tmp_path / "dpo", "dpo")
    _refused(tmp_path, "dpo", data, tmp_path / "no-such-model", r"model path .*no-such-model' does not exist")
    _refused(tmp_path, "dpo", data, tmp_path, r"model directory .* has no config.json")
    assert resolve_model(str(tiny_model)).path == tiny_model.resolve()


def test_tokenizer_without_chat_template_raises(tiny_model, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(tiny_model, plain)
    (plain / "chat_template.jinja").unlink()
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    data = trainer_exports.write_export(tmp_path / "dpo", "dpo")
    _refused(tmp_path, "dpo", data, plain, r"the tokenizer of model .* has no chat template")


def test_bad_options_and_busy_output_raise(tiny_model, tmp_path):
    data = trainer_exports.write_export(tmp_path / "kto", "kto")
    with pytest.raises(ConfigError, match=r"KTO needs at least 2 rows per batch"):
        tracemill.train("kto", data, model=str(tiny_model), output=tmp_path / "o", batch_size=1)
    with pytest.raises(ConfigError, match=r"SFT has no beta"):
        tracemill.train("sft", data, model=str(tiny_model), output=tmp_path / "o", beta=0.1)
    with pytest.raises(ConfigError, match=r"training kind must be one of \['dpo', 'kto', 'sft'\] \(got 'ppo'\)"):
        tracemill.train("ppo", data, model=str(tiny_model), output=tmp_path / "o")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"output directory .* is not empty; pass a new directory, or --overwrite"):
        tracemill.train("kto", data, model=str(tiny_model), output=busy)
    assert (busy / "keep.txt").read_text() == "mine"


def test_cli_prints_one_red_line_for_bad_input(tiny_model, tmp_path):
    data = trainer_exports.write_export(tmp_path / "sft", "sft")
    done = _cli("dpo", str(data), "--model", str(tiny_model), "--output", str(tmp_path / "o"))
    assert done.returncode == 1
    assert "holds a 'sft' export, not 'dpo'" in done.stderr and "Traceback" not in done.stderr


def test_auroc_counts_ties_as_half():
    assert auroc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert auroc([1.0], [1.0]) == 0.5
    assert auroc([1.0, 3.0], [2.0]) == 0.5
    assert auroc([], [1.0]) is None
