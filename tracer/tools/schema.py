"""A tool's parameter schema (JSON Schema), for ``tracemill.tool.parameters`` on its spans.

OpenInference's ``tool.parameters`` is the tool's parameter schema, not the call's arguments
(those are ``input.value``). tracemill knows the schema from two places: the signature of an
``@tracemill.tool`` function (read once, at decoration) and the tool definitions an LLM call was
given (the schema the model saw, preferred when the tool span answers that call). Nothing here
runs per call.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["definition_parameters", "signature_schema"]

_SCALARS: Mapping[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ARRAYS = (list, tuple, set, frozenset, Sequence)
_OBJECTS = (dict, Mapping)


def _type_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema of one annotation; ``{}`` (any value) for what JSON Schema cannot say."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _type_schema(options[0]) if len(options) == 1 else {"anyOf": [_type_schema(a) for a in options]}
    if origin is typing.Annotated:
        return _type_schema(args[0])
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}
    container = origin or hint
    if isinstance(container, type) and issubclass(container, _ARRAYS) and not issubclass(container, str):
        items = args[0] if args and args[-1] is not Ellipsis else (args[0] if args else None)
        return {"type": "array", **({"items": _type_schema(items)} if items is not None else {})}
    if isinstance(container, type) and (issubclass(container, _OBJECTS) or dataclasses.is_dataclass(container)):
        return {"type": "object"}
    return {}


def signature_schema(func: Callable[..., Any], *, drop_first: bool) -> str | None:
    """The JSON Schema (as JSON text) of ``func``'s parameters, or None when it cannot be read.

    Defaults are left out on purpose: they are values, and may be secrets.
    """
    try:
        signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception:  # an annotation that does not resolve (a forward reference): use the raw ones
            hints = {}
        properties: dict[str, Any] = {}
        required: list[str] = []
        extra = False
        params = list(signature.parameters.values())[1 if drop_first else 0:]
        for param in params:
            if param.kind is param.VAR_POSITIONAL:
                continue
            if param.kind is param.VAR_KEYWORD:
                extra = True
                continue
            annotation = hints.get(param.name, param.annotation)
            properties[param.name] = _type_schema(annotation) if not isinstance(annotation, str) else {}
            if param.default is param.empty:
                required.append(param.name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if not extra:
            schema["additionalProperties"] = False
        return json.dumps(schema)
    except Exception:
        return None


def definition_parameters(definitions: Sequence[Any] | None, name: str) -> Any:
    """The parameter schema of tool ``name`` in an LLM call's tool definitions (OpenAI's
    ``{"type": "function", "function": {...}}`` or the flat GenAI form), or None."""
    for definition in definitions or ():
        if not isinstance(definition, Mapping):
            continue
        function = definition.get("function")
        spec = function if isinstance(function, Mapping) else definition
        if spec.get("name") == name:
            parameters = spec.get("parameters", spec.get("input_schema"))
            return parameters if isinstance(parameters, Mapping) else None
    return None
