"""Replaying recorded tool results: ``@tracemill.tool`` calls answered from a recording instead of executed.

An eval of an agent must not book a real flight. While a :class:`Replay` is active in the current context
(:func:`replaying`), a call of a ``@tracemill.tool`` function is matched by tool name and arguments against the
recorded calls of one run, and answered with the recorded result (or the recorded error: a builtin exception
of the recorded type, else :class:`ReplayedToolError`); the function itself never runs. A call with no
matching recording raises :class:`ToolNotRecorded` into the agent (still without running the tool), and is kept
as drift, as are the recordings the run left unused.

The decorator reads one value of the OpenTelemetry context per tool call; with no replay active that is the
whole cost. Arguments
are compared after the same encoding and redaction the tracer applies when it records them, so a call matches the
text the store holds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context

__all__ = ["REPLAYED", "Recording", "Replay", "ReplayedToolError", "ToolNotRecorded", "active_replay", "replaying"]


class ToolNotRecorded(LookupError):
    """A tool was called during a replay with arguments no recording of the run has; it was not executed."""


class ReplayedToolError(RuntimeError):
    """The recorded call of this tool failed with an exception that is not a builtin; its message is raised."""


@dataclass(frozen=True)
class Recording:
    """One recorded tool call: its name, arguments (JSON value), result (JSON value) and error message."""

    name: str
    arguments: Any
    result: Any = None
    error: str | None = None
    error_type: str = ""
    """``error.type`` of the recorded failure: a builtin exception's name is raised as that exception."""

    def raise_error(self) -> None:
        import builtins

        message = self.error or "error"
        cls = getattr(builtins, self.error_type, None) if self.error_type else None
        if isinstance(cls, type) and issubclass(cls, Exception):
            prefix = f"{self.error_type}: "
            raise cls(message[len(prefix):] if message.startswith(prefix) else message)
        raise ReplayedToolError(message)


@dataclass
class Replay:
    """The recorded tool calls of one run, consumed in order of use; thread-safe."""

    recordings: Sequence[Recording]
    answered: int = 0
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    _left: list[Recording] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._left = list(self.recordings)

    def answer(self, name: str, arguments: Any) -> Any:
        """The recorded result of this call (the first unused recording that matches), else raise."""
        key = canonical(arguments)
        with self._lock:
            for index, recording in enumerate(self._left):
                if recording.name == name and canonical(recording.arguments) == key:
                    del self._left[index]
                    self.answered += 1
                    break
            else:
                self.unmatched.append({"name": name, "arguments": arguments})
                raise ToolNotRecorded(f"replay: no recorded call of tool {name!r} with arguments {key}; "
                                      "the tool was not executed")
        if recording.error is not None:
            recording.raise_error()
        return recording.result

    @property
    def unused(self) -> list[dict[str, Any]]:
        """Recordings no call asked for (drift: the agent took another path)."""
        with self._lock:
            return [{"name": r.name, "arguments": r.arguments} for r in self._left]


REPLAYED = "tracemill.tool.replayed"
"""Span attribute: true on an ``execute_tool`` span whose result came from a recording."""

_REPLAY_KEY = otel_context.create_key("tracemill.replay")
# In the OpenTelemetry context, not a context variable of its own: the tracer already carries that context into
# threads and pool workers (tracer/threads.py), so an agent that runs its tools in a pool is replayed too.


def active_replay() -> Replay | None:
    """The replay answering ``@tracemill.tool`` calls in this context; None (the default) executes tools."""
    return otel_context.get_value(_REPLAY_KEY)  # type: ignore[return-value]


@contextmanager
def replaying(replay: Replay) -> Iterator[Replay]:
    """Answer ``@tracemill.tool`` calls in this block (and threads/tasks started in it) from ``replay``."""
    token = otel_context.attach(otel_context.set_value(_REPLAY_KEY, replay))
    try:
        yield replay
    finally:
        otel_context.detach(token)


def canonical(value: Any) -> str:
    """JSON text with sorted keys: two argument sets match when these are equal."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return json.dumps(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def recorded_form(arguments: Mapping[str, Any]) -> Any:
    """Live arguments as the tracer would record them (encoded and redacted), decoded back to a JSON value."""
    from tracemill.tracer import semconv
    from tracemill.tracer.spans import capture

    try:
        return json.loads(capture(semconv.TOOL_CALL_ARGUMENTS, dict(arguments)))
    except Exception:  # a value the encoder cannot take: compare what JSON can say of it
        return json.loads(json.dumps(dict(arguments), default=str))
