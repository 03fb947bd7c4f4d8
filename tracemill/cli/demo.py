"""``tracemill demo``: the whole loop on a fresh store, from tracing an agent to training a tiny model."""

from __future__ import annotations

import typer

from tracemill import config
from tracemill.cli.output import cli_errors, console, err_console

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""
    app.command()(cli_errors(demo))


def demo(
    store: str = typer.Option(
        None, "--store", help="Store DSN for the demo's traces (default: a fresh embedded store under --dir).",
    ),
    directory: str = typer.Option(
        None, "--dir", help="Directory for the demo's store, dataset and models (default: a new one per demo "
        f"under ${config.DATA_DIR.name}/demo).",
    ),
    runs: int = typer.Option(200, "--runs", min=1, help="How many agent runs to trace."),
    skip_train: bool = typer.Option(False, "--skip-train", help="Stop after exporting the dataset."),
    seed: int = typer.Option(7, "--seed", help="Seed of the tickets and the scripted model's behaviours."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Run the whole loop on a fresh store: trace an agent, mine, review, export DPO pairs, train a tiny model."""
    from pathlib import Path

    from tracemill.demo.loop import run_demo

    run_demo(directory=Path(directory) if directory else None, store=store, runs=runs, skip_train=skip_train,
             seed=seed, as_json=as_json, console=console, err_console=err_console)
