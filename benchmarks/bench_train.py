"""Wall time per training step of ``tracemill train dpo`` against a plain TRL script, same data and model, one run.

Both sides train the tiny offline Llama (``tracemill.trainer.tiny``) on the learnable DPO export the trainer tests
use (``tests/trainer/trainer_exports.py``), with the same DPOConfig values (learning rate, epochs, batch size,
seed, CPU, no checkpointing, no progress bar). The plain side is what a user would write: load the JSON splits,
``DPOTrainer(model_dir, args=DPOConfig(...), processing_class=tokenizer)``, ``train()``, with TRL's own logging
interval. Each round runs both, alternating which goes first, so drift on a shared machine hits both alike. The
per-step figure is the Trainer's own ``train_runtime / global_step`` on each side: it excludes the held-out
evaluation the wrapper adds before and after training (reported separately as the wrapper's total overhead).

Run: python benchmarks/bench_train.py [--rounds 3] [--epochs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "trainer"))

import trainer_exports

from tracemill.trainer.tiny import build_tiny_model
from tracemill.trainer.train import train

LR, BATCH, SEED = 5e-3, 8, 0


def plain_trl(data: Path, model: Path, output: Path, epochs: float) -> tuple[float, float, float]:
    """A plain TRL DPO script; (seconds per step, CPU seconds per step, wall seconds)."""
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    start = time.perf_counter()
    splits = load_dataset("json", data_files={"train": str(data / "train.jsonl"), "eval": str(data / "eval.jsonl")})
    args = DPOConfig(output_dir=str(output), num_train_epochs=epochs, learning_rate=LR,
                     per_device_train_batch_size=BATCH, seed=SEED, use_cpu=True, bf16=False,
                     activation_checkpointing=False, save_strategy="no", report_to="none", disable_tqdm=True)
    trainer = DPOTrainer(model=str(model), args=args, train_dataset=splits["train"], eval_dataset=splits["eval"],
                         processing_class=AutoTokenizer.from_pretrained(model))
    cpu = time.process_time()
    result = trainer.train()
    cpu = time.process_time() - cpu
    trainer.save_model(str(output))
    steps = result.global_step
    return result.metrics["train_runtime"] / steps, cpu / steps, time.perf_counter() - start


def wrapped(data: Path, model: Path, output: Path, epochs: float) -> tuple[float, float, float]:
    """``tracemill.train("dpo", ...)``; (seconds per step, CPU seconds per step, wall seconds with evaluation)."""
    start = time.perf_counter()
    report = train("dpo", data, model=str(model), output=output, epochs=epochs, lr=LR, batch_size=BATCH, seed=SEED,
                   progress=False)
    steps = report["train"]["steps"]
    return report["train"]["seconds_per_step"], report["train"]["cpu_s"] / steps, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=10)
    options = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers 5 deprecations read by TRL
    from transformers.utils import logging

    logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = build_tiny_model(root / "model", trainer_exports.texts(), seed=SEED)
        data = trainer_exports.write_export(root / "dpo", "dpo")
        plain_train(data, model, root, options.epochs)  # warm caches (datasets, imports) outside the timing
        ratios, cpu_ratios, overheads = [], [], []
        for number in range(options.rounds):
            sides = {}
            order = ("plain", "tracemill") if number % 2 == 0 else ("tracemill", "plain")
            for side in order:
                run = plain_trl if side == "plain" else wrapped
                sides[side] = run(data, model, root / f"{side}-{number}", options.epochs)
            (plain_step, plain_cpu, plain_wall), (ours_step, ours_cpu, ours_wall) = sides["plain"], sides["tracemill"]
            ratios.append(ours_step / plain_step)
            cpu_ratios.append(ours_cpu / plain_cpu)
            overheads.append(ours_wall - plain_wall)
            print(f"round {number + 1}: plain TRL {plain_step * 1000:.1f} ms/step ({plain_cpu * 1000:.1f} ms CPU), "
                  f"tracemill train {ours_step * 1000:.1f} ms/step ({ours_cpu * 1000:.1f} ms CPU): ratio "
                  f"{ours_step / plain_step:.3f} (CPU {ours_cpu / plain_cpu:.3f}); whole run {plain_wall:.1f} s vs "
                  f"{ours_wall:.1f} s", flush=True)
    print(f"tracemill train dpo / plain TRL, wall time per step: median {statistics.median(ratios):.3f}x "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 1.05x); CPU time per step: median "
          f"{statistics.median(cpu_ratios):.3f}x")
    print(f"whole run incl. before/after evaluation, report and plot: median +{statistics.median(overheads):.1f} s")
    return 0


def plain_train(data: Path, model: Path, root: Path, epochs: float) -> None:
    plain_trl(data, model, root / "warm-up", min(epochs, 1))


if __name__ == "__main__":
    sys.exit(main())
