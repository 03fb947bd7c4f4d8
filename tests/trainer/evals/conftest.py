"""Fixtures for the eval tests: a reviewed travel-desk store, the scripted model in three minds, the CLI.

The store is built once per session by ``world.py`` in a process of its own; the CLI tests run ``tracemill eval``
in processes of their own too (chDB allows one store directory per process), so no test here keeps the store
open between steps. The candidate models are the demo's scripted model behind a real OpenAI-compatible HTTP server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import candidates  # noqa: E402

RUNS, SEED = 60, 7


@dataclass(frozen=True)
class World:
    dsn: str
    corrected: list[tuple[str, str]]
    """(trace id, span id) of each corrected decision."""
    tickets: dict[str, int]
    """Ticket number of each traced run."""


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    dsn = f"chdb://{tmp_path_factory.mktemp('evals') / 'store'}"
    done = subprocess.run([sys.executable, str(HERE / "world.py"), dsn, str(RUNS), str(SEED)], capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["corrections"] >= 14, data["corrections"]  # enough for a half-right candidate to be significant
    return World(dsn, [tuple(pair) for pair in data["corrected"]], data["tickets"])


@pytest.fixture(scope="session")
def models(world: World) -> Iterator[dict[str, str]]:
    """Base URLs of the scripted model: ``old`` (repeats every mistake), ``fixed`` (makes the corrected
    decisions), ``half`` (repeats the mistakes of every other corrected run, in ticket order)."""
    corrected = sorted({world.tickets[trace_id] for trace_id, _ in world.corrected})
    servers = {"old": candidates.server(RUNS, SEED, keep_old=set(corrected)),
               "fixed": candidates.server(RUNS, SEED, keep_old=set()),
               "half": candidates.server(RUNS, SEED, keep_old=set(corrected[::2]))}
    for server in servers.values():
        server.__enter__()
    try:
        yield {name: server.base_url for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    """``tracemill eval ARGS`` in a process of its own, from this directory (so ``--agent desk_agent:...``
    imports)."""
    return subprocess.run([sys.executable, "-m", "tracemill.cli", "eval", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=HERE, env={**os.environ, **(env or {})})


def cli_json(*args: str, env: dict[str, str] | None = None) -> Any:
    done = cli(*args, "--json", env=env)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)
