"""A small JSON Schema validator for tool parameters: the subset tool definitions use.

Tool definitions describe their parameters with JSON Schema, and a reviewer's corrected tool call
must fit them, or the dataset teaches the model calls its tools refuse. The ``jsonschema`` package
is not a dependency of the store, and tool parameter schemas use few keywords: ``type``,
``required``, ``properties``, ``enum``, ``const``, ``additionalProperties``, ``items``, ``anyOf``,
``oneOf``, ``minimum``, ``maximum``. Keywords outside this subset are ignored (accepted), so a
schema this module does not understand never refuses a call it would allow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["schema_errors"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_errors(value: Any, schema: Any, path: str = "arguments") -> list[str]:
    """What is wrong with ``value`` under ``schema``, one message per problem (empty: it fits)."""
    if not isinstance(schema, Mapping):
        return []
    errors: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, name) for name in names):
            return [f"{path} must be {' or '.join(names)} (got {_json_type(value)})"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path} must be one of {schema['enum']!r} (got {value!r})")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path} must be {schema['const']!r} (got {value!r})")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(schema.get("minimum"), (int, float)) and value < schema["minimum"]:
            errors.append(f"{path} must be at least {schema['minimum']} (got {value})")
        if isinstance(schema.get("maximum"), (int, float)) and value > schema["maximum"]:
            errors.append(f"{path} must be at most {schema['maximum']} (got {value})")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{index}]")
    for keyword in ("anyOf", "oneOf"):
        options = schema.get(keyword)
        if isinstance(options, list) and options:
            fitting = sum(1 for option in options if not schema_errors(value, option, path))
            if fitting == 0 or (keyword == "oneOf" and fitting > 1):
                errors.append(f"{path} matches {fitting} of the {len(options)} schemas of {keyword}")
    return errors


def _object_errors(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    raw = schema.get("properties")
    properties: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    for name in schema.get("required") or ():
        if name not in value:
            errors.append(f"{path} is missing the required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            errors += schema_errors(item, properties[name], f"{path}.{name}")
        elif extra is False:
            known = ", ".join(properties) or "none"
            errors.append(f"{path} has the unknown property {name!r} (the schema allows: {known})")
        elif isinstance(extra, Mapping):
            errors += schema_errors(item, extra, f"{path}.{name}")
    return errors


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__
