"""Tool arguments checked against the tool's parameter schema with the ``jsonschema`` library.

Tool definitions describe their parameters with JSON Schema, and a reviewer's corrected tool call must fit
them, or the dataset teaches the model calls its tools refuse. The whole standard applies (nested objects,
enums, ``$ref`` into ``$defs``/``definitions``, combinators, formats), in the draft the schema names with
``$schema`` (2020-12 when it names none). The review UI checks as you type by asking the server
(``POST /api/feedback?check_only=1``), so the browser and the write path can never disagree.

A schema that is itself invalid, or refers to a document that is not in it, cannot say what is allowed: the
call is then not refused for it (the span recorded what the tool offered, not what tracemill could check).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_SCHEMA_ERRORS", "schema_errors"]

MAX_SCHEMA_ERRORS = 10
"""At most this many problems are told per call; the first ones are enough to fix it."""


def schema_errors(value: Any, schema: Any, path: str = "arguments") -> list[str]:
    """What is wrong with ``value`` under ``schema``, one message per problem, each naming the place inside
    ``value`` (``arguments.guest.tier``, ``arguments.rooms[1]``); empty when it fits."""
    if isinstance(schema, bool):
        return [] if schema else [f"{path}: the tool takes no arguments"]
    if not isinstance(schema, Mapping):
        return []
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for
    from referencing.exceptions import Unresolvable

    try:
        cls = validator_for(schema, default=Draft202012Validator)
        cls.check_schema(schema)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
        return [f"{_place(path, error.absolute_path)}: {_message(error)}" for error in errors[:MAX_SCHEMA_ERRORS]]
    except (SchemaError, Unresolvable):
        return []


def _place(root: str, steps: Any) -> str:
    out = root
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def _message(error: Any) -> str:
    """jsonschema's message, with the (possibly long) offending value cut short."""
    message = str(error.message)
    if error.validator in ("enum", "const", "type", "format", "pattern", "minimum", "maximum", "minLength",
                           "maxLength", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        shown = json.dumps(error.instance, ensure_ascii=False)
        if len(shown) > 80:
            message = message.replace(repr(error.instance), shown[:77] + "...")
    return message
