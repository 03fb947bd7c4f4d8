"""A self-contained HTML report of a mining run: tables and matplotlib plots inlined as base64 PNGs.

It renders :meth:`MineResult.to_dict` output, so a run done by a server (``POST /api/mine``) is
reported the same way as a local one. Everything taken from traces is HTML-escaped.
"""

from __future__ import annotations

import base64
import io
from html import escape
from typing import Any

from tracemill.deps import require

__all__ = ["render_html"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}td,th{border:1px solid #ddd;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}.num{text-align:right}.note{color:#555;font-size:.9rem}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0}.failure{color:#b00}.near_miss{color:#a60}
"""


def render_html(result: dict[str, Any]) -> str:
    """The report page for one run's ``to_dict()``."""
    require("matplotlib", extra="miner", feature="The HTML mining report")
    import matplotlib

    matplotlib.use("Agg")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>tracemill mining report</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>tracemill mining report</h1><p class='note'>run {escape(result['run_id'])}, miner "
             f"{escape(result['miner_version'])}: {result['traces']} traces, {result['spans']} spans, "
             f"{result['flags_total']} flags in {result['duration_s']:.2f} s</p>"]
    counts = result["counts"]
    parts.append(_table(["outcome", "traces"], [[k, counts[k]] for k in ("failure", "near_miss", "clean")]))
    parts.append("<h2>Flags by kind</h2>")
    parts.append(_plot_bars(result["by_kind"], "flags by kind"))
    parts.append(_table(["detector", "flags"], list(result["by_detector"].items())))
    parts.append("<h2>Top decisive steps</h2>")
    parts.append(_table(["span name", "flags", "detectors"],
                        [[s["span_name"], s["count"], ", ".join(s["detectors"])] for s in result["top_steps"]]))
    parts.append(_detectors_section(result))
    parts.append(_scorer_section(result["scorer"]))
    parts.append("<h2>Failure taxonomy</h2>")
    taxonomy = result["taxonomy"]
    parts.append(_plot_bars({g["name"][:60]: g["count"] for g in taxonomy}, "traces per failure group"))
    parts.append(_table(["group", "traces", "tools", "example", "example traces"],
                        [[g["name"], g["count"], ", ".join(g["tools"]), g["example_message"], " ".join(g["examples"])]
                         for g in taxonomy]))
    parts.append(_regression_section(result["regressions"]))
    parts.append("<h2>Flags</h2>")
    header = ["category", "kind", "detector", "trace", "decisive span", "severity", "confidence", "evidence"]
    parts.append(_table(header,
                        [[f["category"], f["kind"], f["detector"], f["trace_id"], f["span_id"], f["severity"],
                          f["confidence"], f["evidence"]] for f in result["flags"][:300]]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _detectors_section(result: dict[str, Any]) -> str:
    """The calibration table: each detector's precision, recall and lift on labelled runs, muted or not."""
    rows = result.get("detectors") or []
    out = ["<h2>Detectors on labelled runs</h2>",
           f"<p class='note'>runs grouped by {escape(result.get('grouping') or 'nothing')}; a muted detector's "
           "flags are kept but left out of the review queue and the failure counts</p>"]
    out.append(_table(["detector", "category", "runs", "failed", "precision", "recall", "lift", "state", "evidence"],
                      [[r["detector"], r["category"], r["runs"], r["failed"], _dash(r["precision"]),
                        _dash(r["recall"]), _dash(r["lift"]), "muted" if r["muted"] else "on", r["evidence"]]
                       for r in rows]))  # fmt: skip
    return "\n".join(out)


def _dash(value: Any) -> Any:
    return "-" if value is None else value


def _scorer_section(scorer: dict[str, Any]) -> str:
    out = ["<h2>Learned scorer</h2>", f"<p class='note'>{escape(str(scorer.get('note', '')))}</p>"]
    if scorer.get("mode") != "supervised":
        return "\n".join(out)
    rows = []
    for name in ("model", "rules"):
        q = scorer[name]
        rows.append([("learned scorer" if name == "model" else "rule detectors alone"), q["auroc"], q["precision"],
                     q["recall"], q["brier"]])
    out.append(f"<p>threshold {scorer['threshold']:.4g} on {scorer['labelled']} labelled traces in {scorer['groups']} "
               "task groups (cross-validated, no task in both train and test)</p>")
    out.append(_table(["", "AUROC", "precision", "recall", "Brier"], rows))
    out.append(_plot_roc_calibration(scorer))
    return "\n".join(out)


def _regression_section(regressions: dict[str, Any]) -> str:
    out = ["<h2>Agent versions</h2>"]
    out.append(_table(["version", "traces", "failure rate", "near-miss rate", "first seen"],
                      [[v["version"], v["traces"], v["failure_rate"], v["near_miss_rate"], v["first_day"]]
                       for v in regressions.get("versions", [])]))
    comparison = regressions.get("comparison")
    if comparison:
        rows = [[what, c["baseline_rate"], c["candidate_rate"], c["difference"], c["z"], c["p_value_fisher"],
                 "yes" if c["worse"] else "no"]
                for what, c in (("failure", comparison["failure"]), ("near miss", comparison["near_miss"]))]
        out.append(f"<p>{escape(comparison['candidate'])} against {escape(comparison['baseline'])}</p>")
        header = ["rate", "baseline", "candidate", "difference", "z", "Fisher p", "significantly worse"]
        out.append(_table(header, rows))
    if regressions.get("by_day"):
        out.append(_plot_versions(regressions["by_day"]))
    return "\n".join(out)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p class='note'>none</p>"
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f"<td class='num'>{v}</td>" if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{escape(str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return f"<img alt='plot' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def _plot_bars(values: dict[str, int], title: str) -> str:
    if not values:
        return ""
    import matplotlib.pyplot as plt

    names = list(values)[:20]
    figure, axis = plt.subplots(figsize=(8, 0.35 * len(names) + 1))
    axis.barh(names[::-1], [values[n] for n in names][::-1], color="#4a7")
    axis.set_title(title)
    return _png(figure)


def _plot_versions(by_day: list[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.5))
    for version in dict.fromkeys(row["version"] for row in by_day):
        rows = [r for r in by_day if r["version"] == version]
        axis.plot([r["day"] for r in rows], [r["failure_rate"] for r in rows], marker="o", label=f"{version} failure")
        axis.plot([r["day"] for r in rows], [r["near_miss_rate"] for r in rows], marker="x", linestyle="--",
                  label=f"{version} near miss")
    axis.set_ylabel("rate")
    axis.set_title("failure and near-miss rates by version over time")
    axis.legend(fontsize=7)
    return _png(figure)


def _plot_roc_calibration(scorer: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    figure, (roc, calibration) = plt.subplots(1, 2, figsize=(9, 4))
    for name, label in (("model", "learned scorer"), ("rules", "rule detectors")):
        q = scorer[name]
        roc.plot(q["roc"]["fpr"], q["roc"]["tpr"], label=f"{label} (AUROC {q['auroc']})")
    roc.plot([0, 1], [0, 1], color="#aaa", linestyle=":")
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    roc.set_title("ROC (cross-validated)")
    roc.legend(fontsize=7)
    bins = scorer["model"]["reliability"]
    calibration.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], marker="o", label="scorer")
    calibration.plot([0, 1], [0, 1], color="#aaa", linestyle=":")
    calibration.set_xlabel("predicted failure probability")
    calibration.set_ylabel("observed failure rate")
    calibration.set_title(f"calibration (Brier {scorer['model']['brier']})")
    return _png(figure)
