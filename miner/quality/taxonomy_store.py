"""The failure taxonomy, stored: each mining run that groups failures writes its groups to
``tracemill_taxonomy``, so the review UI and reports read the same groups the miner computed."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import TAXONOMY_TABLE

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["latest_taxonomy", "store_taxonomy"]

_COLUMNS = ("RunId", "CreatedAt", "Rank", "Name", "Traces", "Templates", "Tools", "Detectors", "Examples",
            "ExampleMessage")  # fmt: skip


def store_taxonomy(store: Store, run_id: str, groups: list[dict[str, Any]]) -> None:
    """Write a run's groups (nothing when it found no failures, so the latest groups stay readable)."""
    if not groups:
        return
    now = datetime.now(timezone.utc)
    rows = [[run_id, now, rank, g["name"], g["count"], g["templates"], g["tools"], g["detectors"], g["examples"],
             g["example_message"]] for rank, g in enumerate(groups)]  # fmt: skip
    store.insert(TAXONOMY_TABLE, rows, _COLUMNS)


def latest_taxonomy(store: Store) -> list[dict[str, Any]]:
    """The latest stored groups, in the shape of :attr:`MineResult.taxonomy`, largest first."""
    rows = store.query(
        f"SELECT Name, Traces, Templates, Tools, Detectors, Examples, ExampleMessage FROM {TAXONOMY_TABLE} FINAL "
        f"WHERE RunId = (SELECT argMax(RunId, CreatedAt) FROM {TAXONOMY_TABLE}) ORDER BY Rank"
    ).result_rows
    return [{"name": n, "count": int(c), "templates": list(t), "tools": dict(tools), "detectors": dict(d),
             "examples": list(e), "example_message": m} for n, c, t, tools, d, e, m in rows]  # fmt: skip
