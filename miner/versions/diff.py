"""What changed between two configurations: system-prompt diff, tools added/removed/changed, model and parameters.

Pure functions over the content stored in ``tracemill_config_versions`` (see
:func:`tracemill.tracer.versions.config_version.config_content`), so the CLI, the miner's report and the UI
describe a change in the same words.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["describe", "diff_contents", "pair_changes", "summary"]


def _tools(content: Mapping[str, Any]) -> dict[str, Any]:
    return {str(t.get("name", "")): t for t in content.get("tools") or () if isinstance(t, Mapping)}


def diff_contents(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The difference from configuration ``a`` to ``b``."""
    system_a, system_b = "\n".join(a.get("system") or ()), "\n".join(b.get("system") or ())
    tools_a, tools_b = _tools(a), _tools(b)
    params_a, params_b = dict(a.get("params") or {}), dict(b.get("params") or {})
    return {
        "system": {
            "changed": system_a != system_b,
            "diff": list(difflib.unified_diff(system_a.splitlines(), system_b.splitlines(), "a", "b", lineterm="")),
        },
        "tools": {
            "added": sorted(set(tools_b) - set(tools_a)),
            "removed": sorted(set(tools_a) - set(tools_b)),
            "changed": sorted(n for n in set(tools_a) & set(tools_b)
                              if json.dumps(tools_a[n], sort_keys=True) != json.dumps(tools_b[n], sort_keys=True)),
        },
        "model": ({"from": a.get("model"), "to": b.get("model")} if a.get("model") != b.get("model") else None),
        "provider": ({"from": a.get("provider"), "to": b.get("provider")}
                     if a.get("provider") != b.get("provider") else None),
        "params": {k.rsplit(".", 1)[-1]: {"from": params_a.get(k), "to": params_b.get(k)}
                   for k in sorted(set(params_a) | set(params_b)) if params_a.get(k) != params_b.get(k)},
    }


def summary(diff: Mapping[str, Any]) -> list[str]:
    """One short phrase per change, e.g. ``system prompt changed``, ``tool search changed``."""
    out = []
    if diff["system"]["changed"]:
        out.append("system prompt changed")
    tools = diff["tools"]
    out += [f"tool {n} added" for n in tools["added"]] + [f"tool {n} removed" for n in tools["removed"]]
    out += [f"tool {n} changed" for n in tools["changed"]]
    for key in ("provider", "model"):
        if diff[key]:
            out.append(f"{key} {diff[key]['from']} → {diff[key]['to']}")
    out += [f"{name} {change['from']} → {change['to']}" for name, change in diff["params"].items()]
    return out


def _likeness(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    return sum(a.get(k) == b.get(k) for k in ("provider", "model", "system", "tools", "params"))


def pair_changes(
    removed: Sequence[Mapping[str, Any]], added: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    """Pair each removed decision configuration with the most alike added one (None where unmatched)."""
    left = list(added)
    pairs: list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]] = []
    for old in removed:
        if not left:
            pairs.append((old, None))
            continue
        best = max(left, key=lambda new: _likeness(old, new))
        left.remove(best)
        pairs.append((old, best))
    return pairs + [(None, new) for new in left]


def describe(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], *, agent_from: str = "", agent_to: str = ""
) -> list[str]:
    """What changed between two runs' sets of decision configurations (and agent versions), as phrases."""
    changes = [f"agent version {agent_from or '(none)'} → {agent_to or '(none)'}"] if agent_from != agent_to else []
    same = {json.dumps(c, sort_keys=True) for c in old} & {json.dumps(c, sort_keys=True) for c in new}
    removed = [c for c in old if json.dumps(c, sort_keys=True) not in same]
    added = [c for c in new if json.dumps(c, sort_keys=True) not in same]
    for a, b in pair_changes(removed, added):
        if a is None:
            changes.append(f"decision added ({(b or {}).get('model')})")
        elif b is None:
            changes.append(f"decision removed ({a.get('model')})")
        else:
            changes += summary(diff_contents(a, b))
    return changes
