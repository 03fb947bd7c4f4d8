"""The miner's own quality, every run: one row per labelled mining run in ``tracemill_miner_runs``.

Miner version, scorer model, grouping, labels used, the scorer's grouped-CV AUROC and its precision and
recall at the flag threshold next to the rule detectors alone, and the per-detector calibration table, so
quality over time is one query (``SELECT CreatedAt, Auroc, RulesAuroc FROM tracemill_miner_runs``). The
``tracemill flags --detectors`` table and the review UI's queue read the latest row.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import MINER_RUNS_TABLE

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store
    from tracemill.miner.result import MineResult

__all__ = ["latest_run", "record_run"]

_COLUMNS = ("RunId", "CreatedAt", "MinerVersion", "ModelVersion", "Mode", "Grouping", "Labelled", "Auroc",
            "Precision", "Recall", "RulesAuroc", "RulesPrecision", "RulesRecall", "Threshold", "Detectors",
            "Scorer")  # fmt: skip


def record_run(store: Store, result: MineResult) -> bool:
    """Store the run's quality row when it had labels to measure itself on; True when it did."""
    scorer = result.scorer or {}
    labels = scorer.get("labelled") or 0
    if not any(d.get("base_rate") is not None for d in result.detectors):
        return False
    model, rules = scorer.get("model") or {}, scorer.get("rules") or {}
    row = [
        result.run_id, datetime.now(timezone.utc), result.miner_version, str(scorer.get("model_version", "")),
        str(scorer.get("mode", "")), result.grouping, int(labels), model.get("auroc"), model.get("precision"),
        model.get("recall"), rules.get("auroc"), rules.get("precision"), rules.get("recall"), scorer.get("threshold"),
        json.dumps(result.detectors), json.dumps({k: v for k, v in scorer.items() if k not in ("model", "rules")}),
    ]  # fmt: skip
    store.insert(MINER_RUNS_TABLE, [row], _COLUMNS)
    return True


def latest_run(store: Store) -> dict[str, Any] | None:
    """The latest labelled run's row (``detectors`` and ``scorer`` parsed), or None before the first one."""
    rows = store.query(
        f"SELECT {', '.join(_COLUMNS)} FROM {MINER_RUNS_TABLE} ORDER BY CreatedAt DESC LIMIT 1"
    ).result_rows
    if not rows:
        return None
    keys = ("run_id", "created_at", "miner_version", "model_version", "mode", "grouping", "labelled", "auroc",
            "precision", "recall", "rules_auroc", "rules_precision", "rules_recall", "threshold", "detectors",
            "scorer")  # fmt: skip
    out = dict(zip(keys, rows[0], strict=True))
    out["created_at"] = out["created_at"].isoformat().replace("+00:00", "Z")
    out["detectors"], out["scorer"] = json.loads(out["detectors"]), json.loads(out["scorer"])
    return out
