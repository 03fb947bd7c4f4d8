"""``tracemill train``: DPO, KTO or SFT with TRL on an export, measured on its held-out split before and after.

One runner per method builds TRL's trainer and measures the held-out split; :func:`run` does the rest the same
way for all three: check the inputs (before any model loads), measure, train, measure again, save the model (or
the LoRA adapter), ``report.json`` and ``training.png``. TRL and accelerate do the training and the scaling out
(``accelerate launch -m tracemill.cli train ...``); nothing here distributes work itself. torch, transformers and
TRL are imported only inside the functions.
"""

from __future__ import annotations

import json
import math
import platform
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tracemill.deps import require
from tracemill.errors import ConfigError
from tracemill.trainer.heldout import dpo_measures, kto_measures
from tracemill.trainer.train_config import TrainConfig, make_config
from tracemill.trainer.train_inputs import Export, ModelSource, hub_access, load_tokenizer, read_export, resolve_model

__all__ = ["run", "train"]

# Logged values kept for the report's history and the plot.
_HISTORY_KEYS = ("loss", "rewards/margins", "rewards/accuracies", "mean_token_accuracy", "learning_rate")


def train(kind: str, data_dir: str | Path, *, model: str, output: str | Path, lora: bool = False,
          epochs: float = 1.0, lr: float | None = None, beta: float | None = None, max_length: int | None = None,
          seed: int = 42, batch_size: int = 8, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` on the export in ``data_dir`` with ``kind`` (dpo, kto, sft); return the report.

    ``model`` is a local directory (no hub access then) or a hub id you name. ``output`` receives the model or
    LoRA adapter, ``report.json`` and ``training.png``; it must be new or empty unless ``overwrite``. ``lr``,
    ``beta`` and ``max_length`` default to TRL's values for the method; ``progress`` shows TRL's progress bar.
    """
    config = make_config(kind, beta=beta, epochs=epochs, lr=lr, max_length=max_length, seed=seed,
                         batch_size=batch_size, lora=lora)
    return run(config, data_dir, model=model, output=output, overwrite=overwrite, progress=progress)


def run(config: TrainConfig, data_dir: str | Path, *, model: str, output: str | Path, overwrite: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """:func:`train` with a ready config (see :mod:`tracemill.trainer.train_config`)."""
    export = read_export(config.kind, data_dir)
    source = resolve_model(model)
    _output_dir(Path(output), overwrite=overwrite, create=False)
    require("trl", extra="train", feature="Training")
    if config.lora:
        require("peft", extra="train", feature="LoRA training (--lora)")
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    with hub_access(source), warnings.catch_warnings():
        # TRL 1.16 and peft 0.21 read `model.is_gradient_checkpointing`, which transformers 5 deprecates; nothing a
        # user can act on (drop this once they read `is_activation_checkpointing`).
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        tokenizer = load_tokenizer(source)
        out = _output_dir(Path(output), overwrite=overwrite, create=True)
        runner = RUNNERS[config.kind]
        history = _History()
        trainer = runner.build(config, source, tokenizer, export, out, history=history, progress=progress)
        before, reference = runner.measure(trainer, tokenizer, None)
        cpu = time.process_time()
        result = trainer.train()
        result.metrics["train_cpu_s"] = time.process_time() - cpu
        after, _ = runner.measure(trainer, tokenizer, reference)
        trainer.save_model(str(out))
    report = _report(config, export, source, trainer, result, before, after, history.entries,
                     started=started, seconds=time.perf_counter() - clock)
    if trainer.is_world_process_zero():
        from tracemill.trainer.train_plot import plot_history

        plot_history(history.entries, out / "training.png",
                     title=f"{config.kind.upper()} on {export.directory.name}: {source.name}")
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        # The saved model names the data it learned from (and through it, the configuration versions).
        (out / "dataset_manifest.json").write_text(json.dumps(export.manifest, indent=2) + "\n", encoding="utf-8")
    return report


@dataclass(frozen=True)
class _Runner:
    """How one method builds its TRL trainer and measures the held-out split."""

    kind: str
    trainer_name: str
    config_name: str

    def build(self, config: TrainConfig, source: ModelSource, tokenizer: Any, export: Export, out: Path, *,
              history: _History, progress: bool) -> Any:
        import trl
        from datasets import load_dataset

        data = load_dataset("json", data_files={"train": str(export.train_file), "eval": str(export.eval_file)})
        args = getattr(trl, self.config_name)(**_trl_arguments(config, export, out, progress=progress))
        peft_config = _lora(config) if config.lora else None
        try:
            trainer = getattr(trl, self.trainer_name)(
                model=source.load_from, args=args, train_dataset=data["train"], eval_dataset=data["eval"],
                processing_class=tokenizer, peft_config=peft_config)
        except OSError as exc:  # a hub model that cannot be fetched, a directory with broken weights
            raise ConfigError(f"could not load model {source.name!r}: {exc}") from None
        _quiet_progress(trainer, progress)
        trainer.add_callback(history.callback())
        return trainer

    def measure(self, trainer: Any, tokenizer: Any, reference: Any) -> tuple[dict[str, Any], Any]:
        """The held-out measures now, and what the next call needs as its reference."""
        if self.kind == "sft":
            loss = trainer.evaluate()["eval_loss"]
            return {"rows": len(trainer.eval_dataset), "loss": loss, "perplexity": _exp(loss)}, None
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        measures = dpo_measures if self.kind == "dpo" else kto_measures
        return measures(trainer.model, trainer.eval_dataset, beta=trainer.args.beta,
                        max_length=trainer.args.max_length, pad_id=pad_id, reference=reference)


RUNNERS: dict[str, _Runner] = {
    "dpo": _Runner("dpo", "DPOTrainer", "DPOConfig"),
    "kto": _Runner("kto", "KTOTrainer", "KTOConfig"),
    "sft": _Runner("sft", "SFTTrainer", "SFTConfig"),
}


def _trl_arguments(config: TrainConfig, export: Export, out: Path, *, progress: bool) -> dict[str, Any]:
    """The TRL config fields of this run; a GPU when one is present, the CPU otherwise."""
    import torch

    gpu = torch.cuda.is_available()
    steps = math.ceil(math.ceil(export.train_rows / config.batch_size) * config.epochs)
    arguments: dict[str, Any] = {
        "output_dir": str(out),
        "num_train_epochs": config.epochs,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "seed": config.seed,
        "use_cpu": not gpu and not torch.backends.mps.is_available(),
        "bf16": gpu and torch.cuda.is_bf16_supported(),
        # Checkpointing trades compute for GPU memory; on the CPU it only slows small models down.
        "activation_checkpointing": gpu,
        # A log costs about a step of a tiny model: at least 5 steps apart, about 100 points for training.png.
        "logging_steps": max(5, steps // 100),
        "save_strategy": "no",
        "eval_strategy": "no",  # the held-out split is measured before and after, not during
        "report_to": "none",
        "disable_tqdm": not progress,
    }
    if config.lr is not None:
        arguments["learning_rate"] = config.lr
    if config.max_length is not None:
        arguments["max_length"] = config.max_length
    if getattr(config, "beta", None) is not None:
        arguments["beta"] = config.beta  # type: ignore[attr-defined]
    return arguments


def _lora(config: TrainConfig) -> Any:
    from peft import LoraConfig

    options = config.lora_options
    return LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                      target_modules=options.target_modules, task_type="CAUSAL_LM")


class _History:
    """The values TRL logs during training, one entry per logging step."""

    def __init__(self) -> None:
        self.entries: list[dict[str, float]] = []

    def callback(self) -> Any:
        from transformers import TrainerCallback

        entries = self.entries

        class Record(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                       **kwargs: Any) -> None:
                kept = {key: float(logs[key]) for key in _HISTORY_KEYS if logs and key in logs}
                if "loss" in kept:  # a training step's log, not an evaluation or the final summary
                    entries.append({"step": state.global_step, **kept})

        return Record()


def _quiet_progress(trainer: Any, progress: bool) -> None:
    """Keep TRL's progress bar but not its per-step printed dicts (the plot and report hold those)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class Bar(ProgressCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            pass

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if progress:
        trainer.add_callback(Bar())


def _output_dir(path: Path, *, overwrite: bool, create: bool) -> Path:
    """Check (and with ``create``, make) the output directory: new, empty, or ``overwrite`` allowed."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output {str(path)!r} is a file; pass a directory for the model and report")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"output directory {str(path)!r} is not empty; pass a new directory, or --overwrite to "
                          f"replace what it holds")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _report(config: TrainConfig, export: Export, source: ModelSource, trainer: Any, result: Any,
            before: dict[str, Any], after: dict[str, Any], history: list[dict[str, float]], *,
            started: datetime, seconds: float) -> dict[str, Any]:
    args = trainer.args
    steps = result.global_step
    runtime = result.metrics.get("train_runtime", 0.0)
    trl_options = {"learning_rate": args.learning_rate, "num_train_epochs": args.num_train_epochs,
                   "per_device_train_batch_size": args.per_device_train_batch_size, "max_length": args.max_length,
                   "seed": args.seed}
    if hasattr(args, "beta"):
        trl_options["beta"] = args.beta
    return {
        "kind": config.kind,
        "data": {"directory": str(export.directory), "manifest_sha256": export.manifest_sha256,
                 "content_hash": export.manifest.get("content_hash"), "splits": export.manifest.get("splits"),
                 "counts": export.manifest.get("counts"), "train_rows": export.train_rows,
                 "eval_rows": export.eval_rows, "config_versions": export.manifest.get("config_versions"),
                 "manifest": export.manifest},
        "model": {"name": source.name, "source": "hub" if source.on_hub else "local",
                  "saved": "lora_adapter" if config.lora else "model"},
        "options": {**config.options(), "trl": trl_options},
        "versions": _versions(),
        "device": _device(args),
        "processes": args.world_size,
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "train": {"steps": steps, "runtime_s": runtime, "seconds_per_step": runtime / steps if steps else None,
                  "cpu_s": round(result.metrics["train_cpu_s"], 3), "loss": result.training_loss},
        "before": before,
        "after": after,
        "history": history,
    }


def _device(args: Any) -> str:
    import torch

    device = args.device
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("tracemill", "torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _exp(value: float) -> float:
    return math.exp(value) if value < 700 else math.inf
