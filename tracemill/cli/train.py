"""``tracemill train dpo|kto|sft DATA_DIR --model ... --output ...``: TRL on an export, with a before/after table.

Registered on the main app by :func:`register`. Under ``accelerate launch -m tracemill.cli train ...`` every
process runs this command; TRL and accelerate share the work, and only the main process prints the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tracemill.cli.output import cli_errors, console

_MEASURES = {
    "dpo": [("preference_accuracy", "preference accuracy"), ("reward_margin", "reward margin"),
            ("chosen_logp", "chosen log-prob"), ("rejected_logp", "rejected log-prob")],
    "kto": [("preference_accuracy", "preference accuracy (same prompt)"), ("auroc", "AUROC desirable/undesirable"),
            ("reward_margin", "reward margin"), ("desirable_logp_per_token", "desirable log-prob/token"),
            ("undesirable_logp_per_token", "undesirable log-prob/token")],
    "sft": [("loss", "held-out loss"), ("perplexity", "held-out perplexity")],
}


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""

    @app.command("train")
    @cli_errors
    def train_command(
        kind: str = typer.Argument(..., help="Method: dpo, kto or sft (the export's kind must match)."),
        data_dir: str = typer.Argument(..., help="Directory written by `tracemill export KIND -o DIR`."),
        model: str = typer.Option(..., "--model",
                                  help="Local model directory, or a hub model id (only then is anything downloaded)."),
        output: str = typer.Option(..., "--output", "-o",
                                    help="New directory for the model (or adapter), report.json and training.png."),
        lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter instead of all weights."),
        epochs: float = typer.Option(1.0, "--epochs", help="Passes over the train split."),
        lr: float = typer.Option(None, "--lr", help="Learning rate (default: TRL's for the method)."),
        beta: float = typer.Option(None, "--beta", help="DPO/KTO beta (default: TRL's, 0.1)."),
        max_length: int = typer.Option(None, "--max-length", help="Tokens per prompt + completion (default 1024)."),
        seed: int = typer.Option(42, "--seed", help="Seed of data order and adapter initialization."),
        batch_size: int = typer.Option(8, "--batch-size", help="Rows per device per step."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Allow an output directory that is not empty."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
    ) -> None:
        """Train a model on an export with TRL (DPO, KTO or SFT) and show the held-out split before and after."""
        from tracemill.trainer.train import train

        report = train(kind, data_dir, model=model, output=output, lora=lora, epochs=epochs, lr=lr, beta=beta,
                       max_length=max_length, seed=seed, batch_size=batch_size, overwrite=overwrite,
                       progress=not as_json)
        if not _main_process():
            return
        if as_json:
            console.print_json(data=report)
        else:
            render_report(console, report, Path(output))


def render_report(console: Console, report: dict[str, Any], output: Path) -> None:
    """The before/after table and what was written where."""
    kind = report["kind"]
    table = Table(title=f"{kind.upper()} on {report['data']['eval_rows']} held-out rows")
    table.add_column("measure")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_column("change", justify="right")
    before, after = report["before"], report["after"]
    for key, label in _MEASURES[kind]:
        start, end = before.get(key), after.get(key)
        change = f"{end - start:+.4g}" if start is not None and end is not None else "-"
        table.add_row(label, _number(start), _number(end), change)
    console.print(table)
    train = report["train"]
    console.print(f"{train['steps']} steps in {train['runtime_s']:.1f} s on {report['device']}; "
                  f"{'LoRA adapter' if report['model']['saved'] == 'lora_adapter' else 'model'}, report.json and "
                  f"training.png in {output}", highlight=False)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"
