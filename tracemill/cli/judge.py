"""``tracemill judge``: an OpenAI-compatible model names the decisive step of failed runs, or judges outcomes.

The verdicts are stored as feedback of author ``judge:<model>`` (see :mod:`tracemill.miner.judge.judge`). The
command opens the store itself: with the embedded store, stop ``tracemill serve`` first (chDB lets one
process open it) or point ``--store`` at a ClickHouse server.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console

from tracemill import config
from tracemill.cli.options import store_option
from tracemill.cli.output import cli_errors, console

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``tracemill judge`` to ``app``."""
    app.command()(cli_errors(judge))


def judge(
    model: str = typer.Option(config.JUDGE_MODEL.default, "--model", envvar=config.JUDGE_MODEL.name,
                              help=f"The model to ask (default: ${config.JUDGE_MODEL.name}, else gpt-4o-mini)."),
    base_url: str = typer.Option(None, "--base-url", help="An OpenAI-compatible API (default: $OPENAI_BASE_URL, "
                                                          "else OpenAI's); the key is $OPENAI_API_KEY."),
    strategy: str = typer.Option("all-at-once", "--strategy",
                                 help="all-at-once, step-by-step or binary (decisive task only)."),
    task: str = typer.Option("decisive", "--task", help="decisive (name the step of failed runs) or outcome."),
    limit: int = typer.Option(None, "--limit", min=1, help="Ask about at most this many runs."),
    max_tokens: int = typer.Option(None, "--max-tokens", min=1, help="Token budget: stop asking once spent."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, max=64, help="Questions in flight at once."),
    evaluate: bool = typer.Option(False, "--evaluate", help="Ask about the runs people judged instead, and "
                                                            "report the judge's agreement with them."),
    store: str = store_option(),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Ask a judge model about runs no person judged; store its verdicts as judge:<model> feedback."""
    from tracemill.collector.store.store import using_store
    from tracemill.errors import ConfigError
    from tracemill.miner.judge.client import ChatClient
    from tracemill.miner.judge.judge import TASKS
    from tracemill.miner.judge.judge import judge as run_judge
    from tracemill.miner.judge.prompt import STRATEGIES

    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
    if task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)} (got {task!r})")
    client = ChatClient(model or "gpt-4o-mini", base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
                        max_tokens=max_tokens)
    with using_store(store) as opened:
        report = run_judge(opened, client, task=task, strategy=strategy, limit=limit, concurrency=concurrency,
                           evaluate=evaluate).to_dict()
    if as_json:
        console.print_json(data=report)
        return
    _print(console, report)


def _print(console: Console, report: dict[str, Any]) -> None:
    console.print(
        f"judge {report['model']} ({report['task']}, {report['strategy']}): asked about {report['asked']} runs, "
        f"{report['cached']} answered from the cache, stored {report['stored']} verdicts, refused "
        f"{len(report['refused'])} answers; {report['tokens']} tokens in {report['calls']} calls"
        + (f", {report['rate_limited']} rate-limited and retried" if report["rate_limited"] else "")
        + (f"; budget spent, {report['not_asked']} runs not asked" if report["not_asked"] else ""),
        highlight=False)
    for refusal in report["refused"][:10]:
        console.print(f"  refused for {refusal['trace_id']}: {refusal['reason']}", highlight=False)
    evaluation = report["evaluation"]
    if evaluation is not None:
        if not evaluation["runs"]:
            console.print("no run has both a person's and this judge's verdict", highlight=False)
        elif "outcome" in evaluation:
            console.print(f"agreement with people on {evaluation['runs']} runs: outcome {evaluation['outcome']:.0%}",
                          highlight=False)
        else:
            console.print(f"agreement with people on {evaluation['runs']} runs: step {evaluation['step']:.0%}, "
                          f"agent {evaluation['agent']:.0%}", highlight=False)
