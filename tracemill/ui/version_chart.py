"""The overview's failure rate per configuration version, with the change named next to a significant shift."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracemill.ui import charts

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["config_version_chart"]

_SHOWN = 12


def config_version_chart(store: Store) -> dict[str, Any]:
    """Bars of the newest configuration versions' failure rates, and a note per significant shift."""
    try:
        from tracemill.miner.versions.report import versions_report
    except ImportError:  # the miner's extra is not installed: no chart rather than no page
        return {**charts.bars([]), "notes": []}
    versions = versions_report(store)["versions"][-_SHOWN:]
    items, notes = [], []
    for v in versions:
        label = f"{v['agent'][:16]} {v['version'][:8]}"
        shift = v.get("shift")
        title = f"{v['failed']} of {v['runs']} runs failed"
        if v["significant_shift"] and shift:
            change = "; ".join(v["changes"]) or "no recorded change"
            direction = "up" if shift["difference"] > 0 else "down"
            note = (f"{label}: failure rate {direction} to {shift['candidate_rate']:.0%} from "
                    f"{shift['baseline_rate']:.0%} after {change}")
            notes.append(note)
            title = f"{title}; {note}"
            label = f"▲ {label}" if shift["difference"] > 0 else f"▼ {label}"
        items.append((label, v["failed"] / v["runs"], title))
    return {**charts.bars(items, percent=True), "notes": notes}
