"""``tracemill.evals``: build suites from the store, run them against a candidate, compare two runs.

    import tracemill.evals as evals

    evals.build("refunds", source="corrections", store=dsn)          # {"suite", "version", "cases", ...}
    base = evals.run("refunds", model="gpt-4o-mini", store=dsn)        # {"run_id", "passed", "total", ...}
    cand = evals.run("refunds", model="my-candidate", base_url=url, store=dsn)
    evals.compare(base["run_id"], cand["run_id"], store=dsn)["verdict"]  # "regression" fails CI

Every entry point takes ``store``: an open :class:`~tracemill.Store` (left open), a DSN, or None (the default
store). ``agent`` and ``scorer`` take a callable or ``"module:function"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store
    from tracemill.trainer.evals.runner import Progress

__all__ = ["build", "compare", "junit_xml", "list_runs", "list_suites", "render_html", "run"]


def _store(store: Store | str | None) -> Any:
    from tracemill.deps import require

    require("clickhouse_connect", extra="server", feature="Evals (they read and write the store)")
    from tracemill.collector.store.store import using_store

    return using_store(store)


def build(name: str, *, source: str = "corrections", since: str | float | None = None, limit: int | None = None,
          must_pass: bool = False, store: Store | str | None = None) -> dict[str, Any]:
    """Write a new immutable version of suite ``name`` from ``corrections``, ``outcomes``, ``flags`` or ``all``;
    ``must_pass`` marks every case of it must-pass (a failure is a regression whatever the test says)."""
    from tracemill.trainer.evals.suites import build_suite

    with _store(store) as opened:
        return build_suite(opened, name, source=source, since=since, limit=limit, must_pass=must_pass)


def list_suites(*, store: Store | str | None = None) -> list[dict[str, Any]]:
    """Every suite version: ``{"suite", "version", "source", "cases", "created_at"}``."""
    from tracemill.trainer.evals.tables import list_suites as listed

    with _store(store) as opened:
        return listed(opened)


def list_runs(*, suite: str | None = None, limit: int = 100, store: Store | str | None = None) -> list[dict[str, Any]]:
    """Eval runs, newest first."""
    from tracemill.trainer.evals.tables import list_runs as listed

    with _store(store) as opened:
        return listed(opened, suite=suite, limit=limit)


def _callable(value: Callable[..., Any] | str | None, option: str) -> Callable[..., Any] | None:
    if value is None or callable(value):
        return value
    from tracemill.trainer.evals.scoring import load_callable

    return load_callable(value, option=option)


def _decider(model: str | None, base_url: str | None, api_key: str | None, model_dir: str | None) -> Any:
    from tracemill.errors import ConfigError

    if model and model_dir:
        raise ConfigError("give --model (a served model) or --model-dir (a local one), not both")
    if model_dir:
        from tracemill.trainer.evals.models import TransformersDecider

        return TransformersDecider(model_dir)
    if model:
        from tracemill.trainer.evals.models import OpenAIDecider

        return OpenAIDecider(model, base_url=base_url, api_key=api_key)
    return None


def run(ref: str, *, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
        model_dir: str | None = None, agent: Callable[[Any], Any] | str | None = None,
        scorer: Callable[[Any, Any], Any] | str | None = None, replay_tools: bool = False, repeat: int = 1,
        concurrency: int = 8, case_ids: Sequence[str] | None = None, progress: Progress | None = None,
        store: Store | str | None = None) -> dict[str, Any]:
    """Run suite ``ref`` (``NAME`` or ``NAME@VERSION``): decision cases against ``model`` (an OpenAI-compatible
    server at ``base_url``) or ``model_dir``; run cases against ``agent``, its ``@tracemill.tool`` calls answered
    from the recording with ``replay_tools``. Returns ``{"run_id", "passed", "total", "summary", "results", ...}``."""
    from tracemill.trainer.evals.runner import run_suite

    decider = _decider(model, base_url, api_key, model_dir)
    try:
        with _store(store) as opened:
            return run_suite(opened, ref, decider=decider, agent=_callable(agent, "--agent"),
                             scorer=_callable(scorer, "--scorer"), replay_tools=replay_tools, repeat=repeat,
                             concurrency=concurrency, case_ids=case_ids, progress=progress)
    finally:
        if decider is not None:
            decider.close()


def compare(baseline: str, candidate: str, *, alpha: float = 0.05,
            store: Store | str | None = None) -> dict[str, Any]:
    """Pair two runs case by case: ``{"verdict", "p_value", "regressed", "improved", "cases", ...}``."""
    from tracemill.trainer.evals.compare import compare_runs

    with _store(store) as opened:
        return compare_runs(opened, baseline, candidate, alpha=alpha)


def junit_xml(comparison: dict[str, Any]) -> str:
    """A comparison as JUnit XML (one test case per eval case)."""
    from tracemill.trainer.evals.junit import junit_xml as render

    return render(comparison)


def render_html(comparison: dict[str, Any], *, trace_url: str = "/ui/traces/{trace_id}") -> str:
    """A comparison as a self-contained HTML page."""
    from tracemill.trainer.evals.report import render_html as render

    return render(comparison, trace_url=trace_url)
