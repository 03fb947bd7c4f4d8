"""A comparison as JUnit XML: one test case per paired eval case, failed when the candidate failed it.

CI systems (GitHub Actions test reporters, GitLab, Jenkins) show these per case; a regressed case's failure
message says so and names both traces.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

__all__ = ["junit_xml"]


def junit_xml(comparison: dict[str, Any]) -> str:
    cases = comparison["cases"]
    failed = [c for c in cases if c["candidate_pass_rate"] < 1.0]
    suite = ET.Element("testsuite", {
        "name": f"tracemill eval {comparison['candidate'].get('suite', '')}", "tests": str(len(cases)),
        "failures": str(len(failed)), "errors": "0", "skipped": "0",
    })
    properties = ET.SubElement(suite, "properties")
    for key in ("verdict", "p_value", "test", "alpha"):
        ET.SubElement(properties, "property", {"name": key, "value": str(comparison[key])})
    for case in cases:
        element = ET.SubElement(suite, "testcase", {"classname": "tracemill.eval", "name": case["case_id"]})
        if case["candidate_pass_rate"] < 1.0:
            kind = "regressed" if case["status"] == "regressed" else "failed"
            detail = case.get("candidate_detail") or {}
            failure = ET.SubElement(element, "failure", {
                "type": kind, "message": f"{kind}: pass rate {case['baseline_pass_rate']:.2f} -> "
                                         f"{case['candidate_pass_rate']:.2f}"})
            failure.text = (f"{detail.get('reason') or detail.get('error') or ''}\n"
                            f"baseline trace {case['baseline_trace_id']}\ncandidate trace {case['candidate_trace_id']}")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
