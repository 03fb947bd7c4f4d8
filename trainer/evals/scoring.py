"""Scoring a decision: tool calls equal by name and JSON arguments, answers equal after normalisation.

A decision is ``{"output": text or None, "tool_calls": [{"name", "arguments"}]}``. When the expected decision
calls tools, the candidate must make the same calls (same names, same arguments as JSON values, in any order)
and its text is not compared; when it answers in text, the candidate must call no tool and give the same answer
after :func:`normalise`. A user scorer (``--scorer module:function``) replaces this: it is called with the case
and the candidate's decision (or the agent's result) and returns a bool, a number in [0, 1] (pass at 0.5 and
above) or ``(passed, detail)``.
"""

from __future__ import annotations

import importlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from tracemill.errors import ConfigError

__all__ = ["Scorer", "as_verdict", "load_callable", "normalise", "score_decision"]

Scorer = Callable[[Any, Any], Any]
_SPACE = re.compile(r"\s+")
_EDGE_PUNCTUATION = ".,;:!?\"'`()[]{} "


def normalise(text: str | None) -> str:
    """Case, Unicode form, whitespace runs and punctuation at the ends do not change an answer."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return _SPACE.sub(" ", folded).strip(_EDGE_PUNCTUATION)


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _calls(decision: Mapping[str, Any]) -> list[str]:
    return sorted(json.dumps([call.get("name"), _arguments(call.get("arguments"))], sort_keys=True, default=str)
                  for call in decision.get("tool_calls") or [])


def score_decision(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``actual`` makes the ``expected`` decision, and why not."""
    want, got = _calls(expected), _calls(actual)
    if want or got:
        if want == got:
            return True, "same tool calls"
        return False, f"tool calls differ: expected {', '.join(want) or 'none'}; got {', '.join(got) or 'none'}"
    if normalise(expected.get("output")) == normalise(actual.get("output")):
        return True, "same answer"
    return False, f"answer differs: expected {expected.get('output')!r}; got {actual.get('output')!r}"


def as_verdict(value: Any) -> tuple[bool, str]:
    """A user scorer's return value as (passed, detail)."""
    if isinstance(value, tuple) and len(value) == 2:
        passed, detail = value
        return bool(as_verdict(passed)[0]), str(detail)
    if isinstance(value, bool) or value is None:
        return bool(value), "scorer"
    if isinstance(value, (int, float)):
        return float(value) >= 0.5, f"scorer: {float(value):.3g}"
    raise ConfigError(f"a scorer must return a bool, a number or (passed, detail) (got {type(value).__name__})")


def load_callable(spec: str, *, option: str) -> Callable[..., Any]:
    """``module:function`` → the function (the working directory is importable); errors name the option and what
    was missing."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{option} must be module:function, as in mypkg.evals:score (got {spec!r})")
    import os
    import sys

    if os.getcwd() not in sys.path:  # as uvicorn and pytest do: the user's own modules import from where they run
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{option}: cannot import module {module_name!r} ({exc})") from None
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"{option}: module {module_name!r} has no {attribute!r}")
    if not callable(target):
        raise ConfigError(f"{option}: {spec!r} is not callable")
    return target
