"""Geometry of the overview's small charts, drawn as inline SVG by the queue template.

The numbers become rectangles and labels here; the template writes them as SVG elements, so
labels (kinds, agent names) are escaped like every other piece of content, and no script draws.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KIND_COLOURS", "bars", "stacked_days"]

KIND_COLOURS = ("#d9485f", "#e8a33d", "#4c8bf5", "#3bb273", "#8e6bd8", "#6c7a89")
WIDTH, HEIGHT = 320, 120


def colour_of(kinds: list[str]) -> dict[str, str]:
    return {kind: KIND_COLOURS[i % len(KIND_COLOURS)] for i, kind in enumerate(kinds)}


def stacked_days(per_day: list[dict[str, Any]]) -> dict[str, Any]:
    """Flags per day, one column per day stacked by kind."""
    days = sorted({row["day"] for row in per_day})
    kinds = sorted({row["kind"] for row in per_day})
    colours = colour_of(kinds)
    totals = {day: sum(r["flags"] for r in per_day if r["day"] == day) for day in days}
    top = max(totals.values(), default=0) or 1
    step = WIDTH / max(1, len(days))
    rects = []
    for i, day in enumerate(days):
        y = HEIGHT - 16
        for kind in kinds:
            n = sum(r["flags"] for r in per_day if r["day"] == day and r["kind"] == kind)
            if not n:
                continue
            h = (HEIGHT - 24) * n / top
            y -= h
            rects.append({"x": round(i * step + 1, 1), "y": round(y, 1), "w": round(max(1.0, step - 2), 1),
                          "h": round(h, 1), "fill": colours[kind], "title": f"{day}: {n} {kind}"})
    labels = []
    if days:
        labels = [{"x": 1, "text": days[0], "anchor": "start"}]
        if len(days) > 1:
            labels.append({"x": WIDTH - 1, "text": days[-1], "anchor": "end"})
    return {"width": WIDTH, "height": HEIGHT, "rects": rects, "labels": labels, "max": top,
            "legend": [{"kind": k, "fill": colours[k]} for k in kinds]}


def bars(items: list[tuple[str, float, str]], *, percent: bool = False) -> dict[str, Any]:
    """Horizontal bars: (label, value, tooltip) each; values scaled to the largest (or to 1 when percent)."""
    top = 1.0 if percent else max((value for _, value, _ in items), default=0) or 1
    row = 16
    rects = []
    for i, (label, value, title) in enumerate(items):
        width = (WIDTH - 150) * min(1.0, value / top)
        shown = f"{value:.0%}" if percent else f"{value:g}"
        rects.append({"y": i * row + 2, "w": round(max(1.0, width), 1), "label": label[:26], "value": shown,
                      "title": title, "text_y": i * row + 13})
    return {"width": WIDTH, "height": max(row, len(items) * row + 4), "rects": rects}
