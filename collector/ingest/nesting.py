"""Cut attribute values nested deeper than the protobuf decoder reads, instead of refusing the request.

The upb decoder behind ``opentelemetry-proto`` refuses a message nested more than 100 levels
deep, and every key-value list in an attribute value costs three levels (``AnyValue`` →
``KeyValueList`` → ``KeyValue``), so a span attribute holding 32 nested maps fails the whole
request with 400, which OTel exporters do not retry: every span sent with it is lost.

When (and only when) the decoder refuses a request for its depth, :func:`cut_deep_values` walks
its protobuf wire format down to the attribute values and replaces each list or map that would
pass the limit with the string :data:`CUT_MARKER`. Everything that decoded before is kept byte
for byte; each span that lost part of a value says so in the attribute :data:`CUT_ATTRIBUTE`
(the keys whose values were cut). :func:`cut_deep_json` does the same for an OTLP JSON document.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CUT_ATTRIBUTE", "CUT_MARKER", "MAX_DEPTH", "cut_deep_json", "cut_deep_values", "is_depth_error"]

MAX_DEPTH = 100
"""Message nesting the upb decoder reads (``kUpb_WireFormat_DefaultDepthLimit``)."""

CUT_MARKER = "…[cut: nested deeper than OTLP decoders read]"
CUT_ATTRIBUTE = "tracemill.truncated.nesting"
"""Span attribute listing the keys (``events[0].key``, ``resource.key``, …) whose values were cut."""

# Message kinds, and for each the fields that hold a message of which kind.
_REQUEST, _RESOURCE_SPANS, _RESOURCE, _SCOPE_SPANS, _SCOPE, _SPAN, _EVENT, _LINK = range(8)
_KEY_VALUE, _ANY_VALUE, _ARRAY, _KVLIST = range(8, 12)
_CHILDREN: dict[int, dict[int, int]] = {
    _REQUEST: {1: _RESOURCE_SPANS},
    _RESOURCE_SPANS: {1: _RESOURCE, 2: _SCOPE_SPANS},
    _RESOURCE: {1: _KEY_VALUE},
    _SCOPE_SPANS: {1: _SCOPE, 2: _SPAN},
    _SCOPE: {3: _KEY_VALUE},
    _SPAN: {9: _KEY_VALUE, 11: _EVENT, 13: _LINK},
    _EVENT: {3: _KEY_VALUE},
    _LINK: {4: _KEY_VALUE},
    _KEY_VALUE: {2: _ANY_VALUE},
    _ANY_VALUE: {5: _ARRAY, 6: _KVLIST},
    _ARRAY: {1: _ANY_VALUE},
    _KVLIST: {1: _KEY_VALUE},
}
_SPAN_ATTRIBUTES = 9
_NEEDS = {5: 2, 6: 3}
"""Levels an AnyValue's list (ArrayValue, AnyValue) or map (KeyValueList, KeyValue, AnyValue) adds below it."""


def is_depth_error(exc: BaseException) -> bool:
    """Whether a protobuf decode error is the decoder's nesting limit."""
    return "MaxDepth" in str(exc) or "recursion" in str(exc).lower()


class _Malformed(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Malformed("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _fields(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """``(number, wire type, field start, payload start, field end)`` of each field of ``data``, in order."""
    out = []
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        payload = pos
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, payload = _varint(data, pos)
            pos = payload + length
        else:
            raise _Malformed(f"wire type {wire}")
        if pos > len(data):
            raise _Malformed("truncated field")
        out.append((number, wire, start, payload, pos))
    return out


def _string_value(text: str) -> bytes:
    return _field(1, text.encode())


def _key(data: bytes) -> str:
    for number, wire, _, payload, end in _fields(data):
        if number == 1 and wire == 2:
            return data[payload:end].decode("utf-8", "replace")
    return ""


def _walk(data: bytes, kind: int, depth: int, cuts: list[str], inherited: tuple[str, ...] = ()) -> bytes:
    """``data`` (a message of ``kind`` at nesting ``depth``) with too-deep values cut; ``cuts`` gains the keys.

    ``inherited``: keys cut in the resource or scope above a span, noted on the span too.
    """
    fields = _fields(data)
    if kind == _ANY_VALUE and any(w == 2 and depth + _NEEDS.get(n, 0) > MAX_DEPTH for n, w, _, _, _ in fields):
        cuts.append("")
        return _string_value(CUT_MARKER)
    if kind in (_RESOURCE_SPANS, _SCOPE_SPANS):  # resource or scope first: their cuts are noted on the spans
        fields.sort(key=lambda f: f[0] != 1)
    children = _CHILDREN[kind]
    pieces: list[bytes] = []
    changed = False
    above: list[str] = []  # cuts in this resource or scope
    span_cuts: list[str] = []
    events = links = 0
    for number, wire, start, payload, end in fields:
        child = children.get(number) if wire == 2 else None
        if child is None:
            pieces.append(data[start:end])
            continue
        inner = data[payload:end]
        found: list[str] = []
        new = _walk(inner, child, depth + 1, found, inherited + tuple(above))
        if found:
            changed = True
            if kind == _KEY_VALUE:
                found = [_key(data)]
            elif child == _EVENT:
                found = [f"events[{events}].{k}" for k in found]
            elif child == _LINK:
                found = [f"links[{links}].{k}" for k in found]
            if child == _RESOURCE:
                above.extend(f"resource.{k}" for k in found)
            elif child == _SCOPE:
                above.extend(f"scope.{k}" for k in found)
            elif kind == _SPAN:
                span_cuts.extend(found)
            else:
                cuts.extend(found)
        events += child == _EVENT
        links += child == _LINK
        if new is inner:
            pieces.append(data[start:end])
        else:
            changed = True
            pieces.append(_field(number, new))
    if kind == _SPAN and (span_cuts or inherited):
        changed = True
        pieces.append(_field(_SPAN_ATTRIBUTES, _note([*inherited, *span_cuts])))
    if kind in (_RESOURCE_SPANS, _SCOPE_SPANS) and above:
        changed = True
    return b"".join(pieces) if changed else data


def _note(keys: list[str]) -> bytes:
    """The ``KeyValue`` of :data:`CUT_ATTRIBUTE`: a list of the keys whose values were cut."""
    values = b"".join(_field(1, _string_value(k)) for k in dict.fromkeys(keys))
    return _field(1, CUT_ATTRIBUTE.encode()) + _field(2, _field(5, values))


def cut_deep_values(data: bytes) -> bytes:
    """An ``ExportTraceServiceRequest`` with attribute values past the decoder's depth cut.

    Raises ``ValueError`` when ``data`` is not protobuf wire format.
    """
    try:
        return _walk(data, _REQUEST, 1, [])
    except RecursionError:
        raise _Malformed("nested deeper than Python's recursion limit") from None


# -- the same for OTLP JSON ------------------------------------------------------------------------------


def cut_deep_json(document: dict[str, Any]) -> int:
    """Cut, in place, the values of an OTLP JSON document that :func:`cut_deep_values` would cut.

    Returns how many values were cut. Field names may be camelCase or snake_case, as the protobuf
    JSON mapping accepts both.
    """
    count = 0
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        inherited = [f"resource.{k}" for k in _cut_attributes(_obj(resource_spans, "resource"), 3)]
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            scoped = inherited + [f"scope.{k}" for k in _cut_attributes(_obj(scope_spans, "scope"), 4)]
            for span in _list(scope_spans, "spans"):
                keys = list(scoped) + _cut_attributes(span, 4)
                for i, event in enumerate(_list(span, "events")):
                    keys += [f"events[{i}].{k}" for k in _cut_attributes(event, 5)]
                for i, link in enumerate(_list(span, "links")):
                    keys += [f"links[{i}].{k}" for k in _cut_attributes(link, 5)]
                if keys:
                    count += len(keys)
                    attributes = span.setdefault("attributes", [])
                    if isinstance(attributes, list):
                        values = [{"stringValue": k} for k in dict.fromkeys(keys)]
                        attributes.append({"key": CUT_ATTRIBUTE, "value": {"arrayValue": {"values": values}}})
    return count


def _list(parent: Any, *names: str) -> list[Any]:
    if isinstance(parent, dict):
        for name in names:
            value = parent.get(name)
            if isinstance(value, list):
                return [v for v in value if isinstance(v, dict)]
    return []


def _obj(parent: Any, name: str) -> Any:
    return parent.get(name) if isinstance(parent, dict) else None


def _cut_attributes(owner: Any, depth: int) -> list[str]:
    """Cut the values of the attributes of ``owner`` (a message at nesting ``depth``); the keys cut."""
    cut = []
    for kv in _list(owner, "attributes"):
        if _cut_value(kv.get("value"), depth + 2):
            cut.append(str(kv.get("key", "")))
    return cut


def _cut_value(value: Any, depth: int) -> bool:
    """Cut ``value`` (an AnyValue at nesting ``depth``) where it passes the limit; True when something was cut."""
    if not isinstance(value, dict):
        return False
    container = next((n for n in ("kvlistValue", "kvlist_value", "arrayValue", "array_value") if n in value), None)
    if container is None:
        return False
    kvlist = container.startswith("kvlist")
    if depth + (3 if kvlist else 2) > MAX_DEPTH:
        value.clear()
        value["stringValue"] = CUT_MARKER
        return True
    cut = False
    if kvlist:
        for kv in _list(value[container], "values"):
            cut |= _cut_value(kv.get("value"), depth + 3)
    else:
        for item in _list(value[container], "values"):
            cut |= _cut_value(item, depth + 2)
    return cut
