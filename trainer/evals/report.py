"""A comparison as one self-contained HTML page: the verdict, then each case green, red or grey."""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["render_html"]

_COLOURS = {"improved": "#d7f5dd", "regressed": "#fbd9d9", "same": "#eeeeee"}


def _row(case: dict[str, Any], trace_url: str) -> str:
    links = " / ".join(
        f'<a href="{escape(trace_url.format(trace_id=case[key]))}">{label}</a>'
        for key, label in (("baseline_trace_id", "baseline trace"), ("candidate_trace_id", "candidate trace"))
        if case[key])
    detail = case.get("candidate_detail") or {}
    return (f'<tr style="background:{_COLOURS[case["status"]]}" data-status="{case["status"]}">'
            f"<td>{escape(case['case_id'])}</td><td>{escape(case['status'])}</td>"
            f"<td>{case['baseline_pass_rate']:.2f}</td><td>{case['candidate_pass_rate']:.2f}</td>"
            f"<td>{escape(str(detail.get('reason') or detail.get('error') or ''))}</td><td>{links}</td></tr>")


def render_html(comparison: dict[str, Any], *, trace_url: str = "/ui/traces/{trace_id}") -> str:
    base, cand = comparison["baseline"], comparison["candidate"]
    rows = "\n".join(_row(case, trace_url) for case in comparison["cases"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>tracemill eval comparison</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{padding:4px 8px;
border-bottom:1px solid #ccc;text-align:left}}</style></head><body>
<h1>Verdict: <span id="verdict">{escape(comparison['verdict'])}</span></h1>
<p>{escape(comparison['test'])}: p = {comparison['p_value']:.4g} (alpha {comparison['alpha']}),
{len(comparison['improved'])} improved, {len(comparison['regressed'])} regressed of {comparison['paired_cases']}
paired cases; must-pass failures: {len(comparison['must_pass_failed'])}.</p>
<p>Baseline {escape(base['run_id'][:12])} ({escape(base['candidate'])}):
{comparison['baseline_pass_rate']:.1%}; candidate {escape(cand['run_id'][:12])} ({escape(cand['candidate'])}):
{comparison['candidate_pass_rate']:.1%}.</p>
<table><thead><tr><th>case</th><th>status</th><th>baseline</th><th>candidate</th><th>candidate detail</th>
<th>traces</th></tr></thead><tbody>
{rows}
</tbody></table></body></html>"""
