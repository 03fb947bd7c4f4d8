"""Turn captured Python values into JSON text that fits a byte budget.

msgspec encodes the common types natively (dataclasses, attrs, datetimes, UUIDs, enums,
sets, bytes as base64); pydantic models, numpy values and anything else fall back to
something readable instead of failing. A payload over budget is shrunk structurally, so the
result is still valid JSON and says what was cut.
"""

from __future__ import annotations

from typing import Any

import msgspec

TRUNCATED_CHARS = "…[truncated {} chars]"
TRUNCATED_ITEMS = "…[{} more items truncated]"
TRUNCATED_KEY = "…"
_REPR_LIMIT = 1000


def _fallback(obj: Any) -> Any:
    """Map a type msgspec cannot encode onto one it can; objects that fight back become a name."""
    try:
        return _convert(obj)
    except Exception:
        return f"<{type(obj).__name__} object>"


def _convert(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic v2
    if callable(dump):
        return dump(mode="json")
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):
        return obj.tolist()  # arrays become lists, numpy scalars Python numbers
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__name__} object>"
    return text if len(text) <= _REPR_LIMIT else text[:_REPR_LIMIT] + TRUNCATED_CHARS.format(len(text) - _REPR_LIMIT)


_encoder = msgspec.json.Encoder(enc_hook=_fallback)


def _to_builtins(value: Any) -> Any:
    """Slow path for values msgspec rejects outright (e.g. dicts keyed by objects)."""
    if isinstance(value, dict):
        return {str(k): _to_builtins(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_to_builtins(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return msgspec.to_builtins(value, enc_hook=_fallback)
    except Exception:
        return _fallback(value)


def encode_json(value: Any) -> str:
    """Encode ``value`` as JSON text; never raises for any input."""
    if isinstance(value, str):
        return _encoder.encode(value).decode()
    try:
        return _encoder.encode(value).decode()
    except Exception:
        pass
    try:
        return _encoder.encode(_to_builtins(value)).decode()
    except Exception:
        return _encoder.encode(f"<{type(value).__name__} object>").decode()


def _shrink(value: Any, str_limit: int, item_limit: int) -> Any:
    if isinstance(value, str):
        if len(value) > str_limit:
            return value[:str_limit] + TRUNCATED_CHARS.format(len(value) - str_limit)
        return value
    if isinstance(value, list):
        items = [_shrink(v, str_limit, item_limit) for v in value[:item_limit]]
        if len(value) > item_limit:
            items.append(TRUNCATED_ITEMS.format(len(value) - item_limit))
        return items
    if isinstance(value, dict):
        out = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= item_limit:
                out[TRUNCATED_KEY] = TRUNCATED_ITEMS.format(len(value) - item_limit)
                break
            out[k] = _shrink(v, str_limit, item_limit)
        return out
    return value


def fit_text(text: str, max_bytes: int) -> str:
    """Cut plain text to ``max_bytes`` (UTF-8) with a marker saying how much was cut."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    keep = data[: max(max_bytes - 40, 0)].decode(errors="ignore")
    return keep + TRUNCATED_CHARS.format(len(text) - len(keep))


def fit_json(text: str, max_bytes: int) -> str:
    """Return ``text`` if it fits ``max_bytes`` (UTF-8), else a smaller valid JSON with markers.

    Long strings are cut first, then long lists and objects, halving the limits until the
    result fits; as a last resort a small object says how large the original was.
    """
    size = len(text.encode()) if not text.isascii() else len(text)
    if size <= max_bytes:
        return text
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        value = text
    str_limit, item_limit = max(max_bytes // 2, 16), 256
    while str_limit >= 8 and item_limit >= 1:
        candidate = _encoder.encode(_shrink(value, str_limit, item_limit))
        if len(candidate) <= max_bytes:
            return candidate.decode()
        str_limit //= 2
        item_limit = max(item_limit // 2, 1) if str_limit < 64 else item_limit
        if str_limit < 8 and item_limit > 1:
            str_limit, item_limit = 8, item_limit // 2
    return _encoder.encode({"tracemill.truncated": True, "original_bytes": size}).decode()
