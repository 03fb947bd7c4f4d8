"""Reading JSON from outside (API bodies, tool-call argument text) into values every later step can handle.

Python's ``json`` accepts documents the rest of the write path cannot take: ``NaN`` and ``Infinity``
(refused by the store's ``allow_nan=False`` dump), integers too large for a float (``float()`` raises
``OverflowError``), lone UTF-16 surrogates (``"\\ud800"``, which UTF-8 cannot encode for the insert), and
nesting deep enough to hit the interpreter's recursion limit. :func:`loads_strict` refuses each with a
:class:`~tracemill.errors.ConfigError` that says what was found, so an API answers 400, never 500.
"""

from __future__ import annotations

import json
from typing import Any

from tracemill.errors import ConfigError

__all__ = ["MAX_JSON_DEPTH", "check_value", "loads_strict"]

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays accepted; feedback and tool arguments need far fewer levels."""

def _refuse_constant(name: str) -> Any:
    raise ConfigError(f"{name} is not a JSON number; send a finite number (or null)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ConfigError(f"the number {text[:40]} is too large; send a number below 1e308")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 308:
        raise ConfigError(f"the number {text[:40]}… has {len(text)} digits; send a number below 1e308")
    return int(text)


def _describe_decode_error(exc: json.JSONDecodeError | UnicodeDecodeError, what: str) -> ConfigError:
    return ConfigError(f"{what} is not JSON: {exc}")


def loads_strict(data: str | bytes, *, what: str = "the body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``data`` parsed as JSON, or a :class:`ConfigError` naming ``what`` and the problem."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as exc:
        raise _describe_decode_error(exc, what) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_int)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _describe_decode_error(exc, what) from None
    except RecursionError:  # the C scanner gives up near the interpreter's recursion limit
        raise ConfigError(f"{what} is nested more than {max_depth} levels deep; send a flatter document") from None
    except ValueError as exc:
        raise ConfigError(f"{what} is not JSON tracemill can read: {exc}") from None
    check_value(value, what=what, max_depth=max_depth)
    return value


def check_value(value: Any, *, what: str = "the value", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse a decoded value with a lone surrogate in a string or key, or nesting past ``max_depth``.

    Iterative, so a deep value cannot exhaust the stack while being checked."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, what)
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise ConfigError(f"{what} is nested more than {max_depth} levels deep; send a flatter document")
            if isinstance(item, dict):
                for key, inner in item.items():
                    _check_text(key, what)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start:exc.end]
        raise ConfigError(
            f"{what} holds a lone UTF-16 surrogate ({bad.encode('unicode_escape').decode()}) that is not text; "
            "send valid Unicode"
        ) from None
