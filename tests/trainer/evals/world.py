"""Build a reviewed travel-desk store for the eval tests: traced runs, mined, corrected by the scripted reviewer.

Run as a script in a process of its own (chDB allows one store directory per process):
``python world.py chdb:///abs/path RUNS SEED`` traces RUNS tickets against the demo's scripted model (each ticket
with its drawn behaviour: about half the runs go wrong in the ways real agents do), mines them, and lets the
scripted reviewer correct the decisive decisions and record every outcome. Prints a JSON summary.
"""

from __future__ import annotations

import json
import sys

import tracemill
from tracemill.demo.review import review
from tracemill.demo.runs import trace_runs


def build(dsn: str, runs: int, seed: int) -> dict:
    records = trace_runs(dsn, runs, seed=seed)
    tracemill.shutdown()
    with tracemill.Store.open(dsn) as store:
        tracemill.mine(store)
        flags = store.query("SELECT TraceId, SpanId, Detector FROM tracemill_flags FINAL").result_rows
        reviewed = review(store, [{"trace_id": t, "span_id": s, "detector": d} for t, s, d in flags], records)
    return {"runs": len(records), "corrections": reviewed.corrections,
            "corrected": reviewed.corrected_spans,
            "behaviours": {r.trace_id: r.behaviour for r in records},
            "tickets": {r.trace_id: r.ticket.number for r in records}}


if __name__ == "__main__":
    print(json.dumps(build(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
