"""Configuration versions: a short content hash of what configures an LLM decision.

The content is the system instructions (given apart or as system/developer messages), the tool
definitions (names, descriptions, schemas), the provider, the model and the request parameters.
The same content gives the same version whether the tracer hashed it from the call's arguments
or the collector hashed it at ingest from a span's GenAI attributes: both go through
:func:`config_content` and :func:`version_of`. The tracer hashes once per distinct configuration
(:func:`cached_version`), so a loop of calls with the same prompt pays a dictionary lookup.

This module imports nothing from the collector; the collector imports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from tracemill.tracer import semconv
from tracemill.tracer.messages import to_genai_message

__all__ = [
    "CONFIG_VERSION",
    "PARAM_KEYS",
    "PROMPT_NAME",
    "PROMPT_VERSION",
    "RUN_CONFIG_VERSION",
    "attributes_content",
    "cached_version",
    "candidate_version",
    "config_content",
    "current_prompt",
    "prompt",
    "run_version",
    "system_texts",
    "version_of",
]

CONFIG_VERSION = "tracemill.config.version"
RUN_CONFIG_VERSION = "tracemill.run.config.version"
PROMPT_NAME = "gen_ai.prompt.name"
PROMPT_VERSION = "gen_ai.prompt.version"

_FLOAT, _INT, _LIST = "float", "int", "list"
PARAM_KEYS: dict[str, str] = {
    semconv.REQUEST_TEMPERATURE: _FLOAT, semconv.REQUEST_TOP_P: _FLOAT, semconv.REQUEST_MAX_TOKENS: _INT,
    semconv.REQUEST_SEED: _INT, semconv.REQUEST_STOP_SEQUENCES: _LIST,
    semconv.REQUEST_FREQUENCY_PENALTY: _FLOAT, semconv.REQUEST_PRESENCE_PENALTY: _FLOAT,
    semconv.REQUEST_CHOICE_COUNT: _INT,
}
"""Request parameters that are part of a configuration, with the type their value is normalized to."""

_SYSTEM_ROLES = ("system", "developer")
_VERSION_CHARS = 12


def _param(kind: str, value: Any) -> Any:
    try:
        if kind == _FLOAT:
            return float(value)
        if kind == _INT:
            return int(value)
    except (TypeError, ValueError):
        return str(value)
    if isinstance(value, str):  # a JSON array kept as text on a span
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _part_texts(parts: Any) -> list[str]:
    if isinstance(parts, str):
        return [parts]
    texts = []
    for part in parts or ():
        if isinstance(part, Mapping) and part.get("type", "text") == "text":
            content = part.get("content", part.get("text"))
            if isinstance(content, str):
                texts.append(content)
        elif isinstance(part, str):
            texts.append(part)
    return texts


def system_texts(system_instructions: Any, messages: Any) -> list[str]:
    """The system text: instructions given apart, then the system/developer messages, in order."""
    texts = _part_texts(system_instructions) if system_instructions is not None else []
    if messages is None or isinstance(messages, str):
        return texts
    for message in [messages] if isinstance(messages, Mapping) else messages:
        if type(message) is dict or isinstance(message, Mapping):
            if message.get("role") not in _SYSTEM_ROLES:
                continue
            content = message.get("content")
            texts.extend([content] if type(content) is str else _part_texts(to_genai_message(message).get("parts")))
    return texts


def config_content(
    *, provider: Any, model: Any, system: Sequence[str], tools: Sequence[Any] | None, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The canonical content of a configuration (the thing hashed and stored once)."""
    tool_list = sorted(
        (dict(t) for t in tools or () if isinstance(t, Mapping)), key=lambda t: str(t.get("name", ""))
    )
    return {
        "provider": str(provider or ""),
        "model": str(model or ""),
        "system": list(system),
        "tools": tool_list,
        "params": {k: _param(PARAM_KEYS[k], v) for k, v in sorted(params.items()) if k in PARAM_KEYS and v is not None},
    }


def version_of(content: Mapping[str, Any]) -> str:
    """A short hex digest of canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_VERSION_CHARS]


def run_version(decision_versions: Sequence[str], agent_version: str | None = None) -> str:
    """A run's configuration version: its decisions' distinct versions with ``gen_ai.agent.version``."""
    return version_of({"decisions": sorted({v for v in decision_versions if v}), "agent": agent_version or ""})


def _json_attr(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def attributes_content(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """The configuration content of an LLM span from its GenAI attributes (values as stored: JSON text).

    None when the span names no model (not an inference span).
    """
    model = attributes.get(semconv.REQUEST_MODEL) or attributes.get("llm.model_name")
    if not model:
        return None
    tools = _json_attr(attributes.get(semconv.TOOL_DEFINITIONS))
    return config_content(
        provider=attributes.get(semconv.PROVIDER_NAME) or attributes.get("gen_ai.system"),
        model=model,
        system=system_texts(_json_attr(attributes.get(semconv.SYSTEM_INSTRUCTIONS)),
                            _json_attr(attributes.get(semconv.INPUT_MESSAGES))),
        tools=tools if isinstance(tools, list) else None,
        params={k: attributes[k] for k in PARAM_KEYS if k in attributes},
    )


class _VersionCache:
    """Versions by a cheap key of the call's arguments; bounded, least recently used out.

    Strings, numbers and tuples key by value; other objects (a tool's schema dict) by identity, and
    the entry holds them so an id cannot be reused while it is cached. A schema mutated in place
    keeps its old version until it leaves the cache: pass a new dict to change a configuration.
    """

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[Any, ...], tuple[str, tuple[Any, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple[Any, ...], version: str, held: tuple[Any, ...]) -> None:
        with self._lock:
            self._entries[key] = (version, held)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


_CACHE = _VersionCache()
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _key_of(value: Any, held: list[Any]) -> Any:
    # Exact type checks, not isinstance against ABCs: this runs on every LLM call.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return tuple((k, v if type(v) in _SCALARS else _identity(v, held)) for k, v in value.items())
    if kind is list or kind is tuple:
        return tuple([_key_of(v, held) for v in value])
    return _identity(value, held)


def _identity(value: Any, held: list[Any]) -> tuple[str, int]:
    held.append(value)
    return ("id", id(value))


def cached_version(
    *, provider: Any, model: Any, system_instructions: Any, messages: Any, tools: Sequence[Any] | None,
    params: Mapping[str, Any],
) -> str:
    """The version of one call's configuration, hashed only the first time it is seen."""
    system = tuple(system_texts(system_instructions, messages))
    held: list[Any] = []
    key = (provider, model, system, _key_of(tools, held),
           tuple((k, _key_of(v, held)) for k, v in params.items() if k in PARAM_KEYS and v is not None))
    found = _CACHE.get(key)
    if found is not None:
        return found
    version = version_of(config_content(provider=provider, model=model, system=system, tools=tools, params=params))
    _CACHE.put(key, version, tuple(held))
    return version


_PROMPT: ContextVar[tuple[str, str | None] | None] = ContextVar("tracemill_prompt", default=None)


@contextlib.contextmanager
def prompt(name: str, version: str | int | None = None) -> Iterator[None]:
    """Name the prompt the LLM calls inside use: ``gen_ai.prompt.name`` / ``.version`` on their spans."""
    token = _PROMPT.set((str(name), None if version is None else str(version)))
    try:
        yield
    finally:
        _PROMPT.reset(token)


def current_prompt() -> tuple[str, str | None] | None:
    """The prompt named by the innermost :func:`prompt` block, if any."""
    return _PROMPT.get()


def candidate_version(
    *, provider: str, model: str, system_instructions: Any = None, tools: Sequence[Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> str:
    """The configuration version a candidate (a model, prompt and tools under evaluation) will record.

    ``params`` uses the GenAI keys (``gen_ai.request.temperature``...) or their short names
    (``temperature``). An eval run records this as its candidate's version; traced calls made with the
    same configuration carry the same value in ``tracemill.config.version``.
    """
    full = {k if k.startswith("gen_ai.") else f"gen_ai.request.{k}": v for k, v in (params or {}).items()}
    return version_of(config_content(provider=provider, model=model,
                                     system=system_texts(system_instructions, None), tools=tools, params=full))
