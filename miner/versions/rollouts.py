"""Rollouts in the store: arms' failure rates, the sequential test, and the kill switch.

A rollout exists once a run records it (``tracemill.rollout.name``/``.arm``) or a person sets its
state. Its state is the newest row of ``tracemill_rollouts`` (``running`` when there is none). Every
``tracemill mine`` calls :func:`check_rollouts`: a running rollout whose candidate is significantly
worse under the mSPRT (:mod:`tracemill.miner.versions.sequential`) is halted. Each state change is also
written to the state file that processes on this machine read when no server answers
(:func:`tracemill.tracer.rollout.state_file`).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.query import attribute
from tracemill.collector.store.schema import SPANS_TABLE, quote_literal
from tracemill.collector.store.schema_versions import ROLLOUTS_TABLE
from tracemill.errors import ConfigError, NotFoundError
from tracemill.miner.versions.report import group_counts, run_versions
from tracemill.miner.versions.sequential import msprt
from tracemill.tracer.versions.rollout import NAME, STATES, state_file

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tracemill.collector.store.store import Store

__all__ = ["ACTIONS", "check_rollouts", "rollout_names", "rollout_state", "rollout_status", "set_rollout_state"]

_COLUMNS = ("Name", "State", "Reason", "Author", "Test", "UpdatedAt")

ACTIONS = {"halt": "halted", "resume": "running", "promote": "promoted"}
"""What each person's action (``tracemill rollout halt|resume|promote``) sets the rollout's state to."""


def rollout_names(store: Store) -> list[str]:
    """Every rollout the store knows: recorded by runs or given a state. Spans are looked for by the attribute's
    key first: that reads the keys of every span's attributes, not their values (run by every mine)."""
    rows = store.query(
        f"""SELECT DISTINCT n FROM (
                SELECT {attribute(NAME)} AS n FROM {SPANS_TABLE}
                WHERE mapContains(SpanAttributes, {quote_literal(NAME)}) AND n != ''
                UNION ALL SELECT Name AS n FROM {ROLLOUTS_TABLE})
            ORDER BY n"""
    ).result_rows
    return [r[0] for r in rows]


def rollout_state(store: Store, name: str) -> dict[str, Any] | None:
    """The newest state row of ``name``: ``{"state", "reason", "author", "test", "updated_at"}``, or None."""
    rows = store.query(
        f"SELECT State, Reason, Author, Test, UpdatedAt FROM {ROLLOUTS_TABLE} FINAL WHERE Name = {{name:String}}",
        {"name": name},
    ).result_rows
    if not rows:
        return None
    state, reason, author, test, updated = rows[0]
    return {"state": state, "reason": reason, "author": author, "test": json.loads(test) if test else None,
            "updated_at": updated.replace(tzinfo=timezone.utc).isoformat()}


def set_rollout_state(
    store: Store, name: str, state: str, *, reason: str = "", author: str = "", test: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Record a new state for ``name`` in the store and in this machine's state file."""
    if state not in STATES:
        raise ConfigError(f"state must be one of {', '.join(STATES)} (got {state!r})")
    now = datetime.now(timezone.utc)
    store.insert(ROLLOUTS_TABLE, [(name, state, reason, author, json.dumps(test or {}), now)], _COLUMNS)
    _mirror(name, state, reason, env)
    return {"name": name, "state": state, "reason": reason, "author": author, "updated_at": now.isoformat()}


def _mirror(name: str, state: str, reason: str, env: Mapping[str, str] | None) -> None:
    path = state_file(name, env)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump({"name": name, "state": state, "reason": reason}, f)
    os.replace(temporary, path)  # readers see the old file or the new one, never half of one


def rollout_status(store: Store, name: str, *, previous_p: float = 1.0) -> dict[str, Any]:
    """Arms (runs, failed, failure rate), the sequential test at this look, and the state."""
    counts = group_counts(run_versions(store, rollout=name), "arm")
    stored = rollout_state(store, name)
    if not counts and stored is None:
        raise NotFoundError(f"no rollout named {name!r}: no run recorded it and nobody set its state "
                            "(see `tracemill rollout status` with the name given to tracemill.rollout)")
    arms = {arm: {"runs": n, "failed": x, "failure_rate": round(x / n, 4) if n else None}
            for arm, (n, x) in sorted(counts.items()) if arm}
    n_c, x_c = counts.get("control", [0, 0])
    n_t, x_t = counts.get("candidate", [0, 0])
    if stored and stored.get("test"):
        previous_p = min(previous_p, float(stored["test"].get("p_value", 1.0)))
    test = msprt(x_c, n_c, x_t, n_t, previous_p=previous_p)
    return {"name": name, "state": stored["state"] if stored else "running", "arms": arms,
            "test": {"method": "mSPRT (normal mixture)", **test.to_dict()},
            "reason": stored["reason"] if stored else "", "updated_at": stored["updated_at"] if stored else None}


def check_rollouts(store: Store, *, env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Look at every running rollout once; halt those whose candidate is significantly worse."""
    out = []
    for name in rollout_names(store):
        status = rollout_status(store, name)
        test = status["test"]
        if status["state"] == "running" and test["worse"]:
            reason = (f"candidate failure rate {test['candidate_failed']}/{test['candidate_runs']} against control "
                      f"{test['control_failed']}/{test['control_runs']}: mSPRT p {test['p_value']:.2g} < "
                      f"alpha {test['alpha']}")
            set_rollout_state(store, name, "halted", reason=reason, author="tracemill mine", test=test, env=env)
            status = {**status, "state": "halted", "reason": reason}
        out.append(status)
    return out
