"""``training.png``: the training loss and the reward margin (or token accuracy, for SFT) over the steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def plot_history(history: Sequence[Mapping[str, Any]], path: Path, *, title: str) -> Path:
    """Draw the logged values of ``history`` (one mapping per logging step) into ``path`` and return it."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and safe in a worker thread
    import matplotlib.pyplot as plt

    panels = [("loss", "training loss"), ("rewards/margins", "reward margin (chosen - rejected)"),
              ("mean_token_accuracy", "mean token accuracy")]
    shown = [(key, label) for key, label in panels if any(key in entry for entry in history)][:2] or panels[:1]
    figure, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 3.8), squeeze=False)
    for axis, (key, label) in zip(axes[0], shown, strict=True):
        points = [(entry["step"], entry[key]) for entry in history if key in entry]
        if points:
            steps, values = zip(*points, strict=True)
            axis.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3)
        axis.set_xlabel("step")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
