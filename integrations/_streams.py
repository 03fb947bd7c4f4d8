"""Proxies around an SDK's response stream that end the LLM span exactly once.

The proxy stands in for the SDK's stream object (``isinstance`` checks, attributes and methods
all reach the real stream) and passes every chunk through unchanged. Each chunk is shown to a
recorder; the recorder's ``finish`` runs once, on whichever exit comes first:

- the stream is read to the end, or raises;
- the consumer leaves a ``for`` loop early (``break``): the loop's iterator is closed;
- ``close()``/``aclose()``, or leaving a ``with``/``async with`` block;
- the task is cancelled (the ``CancelledError`` passes through the iterator);
- the stream is dropped without any of the above (garbage collection).

No context is attached while the consumer holds a chunk, so a consumer that abandons the
stream or closes it from another task leaves nothing attached behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import wrapt

from tracemill.tracer.logs import log_once


class StreamRecorder(Protocol):
    def add(self, chunk: Any) -> None: ...

    def finish(self, exc: BaseException | None, closed_early: bool) -> None: ...


class _State:
    """The recorder plus a flag, kept apart from the proxy so a finalizer never resurrects it."""

    __slots__ = ("done", "recorder")

    def __init__(self, recorder: StreamRecorder) -> None:
        self.recorder = recorder
        self.done = False

    def add(self, chunk: Any) -> None:
        if not self.done:
            try:
                self.recorder.add(chunk)
            except Exception:
                log_once("stream.chunk", "tracemill: could not record a stream chunk")

    def finish(self, exc: BaseException | None = None, closed_early: bool = False) -> None:
        if self.done:
            return
        self.done = True
        if isinstance(exc, GeneratorExit):
            exc, closed_early = None, True
        try:
            self.recorder.finish(exc, closed_early)
        except Exception:
            log_once("stream.finish", "tracemill: could not finish a stream's span")


def _finish_dropped(proxy: Any) -> None:
    try:
        state = proxy._self_state
    except AttributeError:  # __init__ never finished
        return
    state.finish(closed_early=True)


class TracedStream(wrapt.ObjectProxy):
    """A synchronous SDK stream that records what it yields."""

    def __init__(self, stream: Any, recorder: StreamRecorder) -> None:
        super().__init__(stream)
        self._self_state = _State(recorder)

    def __iter__(self) -> Iterator[Any]:
        state = self._self_state
        try:
            for chunk in self.__wrapped__:
                state.add(chunk)
                yield chunk
        except BaseException as exc:  # GeneratorExit (break, close, drop) included
            state.finish(exc)
            raise
        state.finish()

    def __next__(self) -> Any:
        state = self._self_state
        try:
            chunk = next(self.__wrapped__)
        except StopIteration:
            state.finish()
            raise
        except BaseException as exc:
            state.finish(exc)
            raise
        state.add(chunk)
        return chunk

    def __enter__(self) -> TracedStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            # an exception leaving the ``with`` block fails the call; a plain exit closes it early
            self._self_state.finish(exc_info[1], closed_early=exc_info[1] is None)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_state.finish(closed_early=True)

    def __del__(self) -> None:
        _finish_dropped(self)


class TracedAsyncStream(wrapt.ObjectProxy):
    """An asynchronous SDK stream that records what it yields."""

    def __init__(self, stream: Any, recorder: StreamRecorder) -> None:
        super().__init__(stream)
        self._self_state = _State(recorder)

    async def __aiter__(self) -> AsyncIterator[Any]:
        state = self._self_state
        try:
            async for chunk in self.__wrapped__:
                state.add(chunk)
                yield chunk
        except BaseException as exc:  # GeneratorExit, CancelledError included
            state.finish(exc)
            raise
        state.finish()

    async def __anext__(self) -> Any:
        state = self._self_state
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            state.finish()
            raise
        except BaseException as exc:
            state.finish(exc)
            raise
        state.add(chunk)
        return chunk

    async def __aenter__(self) -> TracedAsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_state.finish(exc_info[1], closed_early=exc_info[1] is None)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_state.finish(closed_early=True)

    async def aclose(self) -> None:
        await self.close()

    def __del__(self) -> None:
        _finish_dropped(self)
