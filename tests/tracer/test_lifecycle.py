"""Async functions, generators and async generators end their span exactly once on every exit path,
without leaving context attached or logging "Failed to detach context"."""

from __future__ import annotations

import asyncio
import gc
import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import tracemill


@pytest.fixture(autouse=True)
def no_context_errors(caplog):
    """Fail any test here in which OpenTelemetry logs a context detach error."""
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    yield
    detach_errors = [r for r in caplog.records if "detach" in r.getMessage().lower()]
    assert not detach_errors, [r.getMessage() for r in detach_errors]


def _current_span_id() -> int:
    return trace.get_current_span().get_span_context().span_id


@tracemill.step(name="numbers")
def numbers(n):
    yield from range(n)


@tracemill.step(name="anumbers")
async def anumbers(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


def test_async_function_return_and_exception(spans):
    @tracemill.tool
    async def fetch(url):
        await asyncio.sleep(0)
        return {"url": url}

    @tracemill.tool
    async def broken():
        await asyncio.sleep(0)
        raise ValueError("nope")

    async def main():
        assert await fetch("u") == {"url": "u"}
        with pytest.raises(ValueError, match="nope"):
            await broken()

    asyncio.run(main())
    assert json.loads(spans.named("execute_tool fetch").attributes["gen_ai.tool.call.result"]) == {"url": "u"}
    assert spans.named("execute_tool broken").status.status_code is StatusCode.ERROR
    assert len(spans.finished) == 2


def test_async_function_cancellation_ends_span_with_error(spans):
    started = asyncio.Event

    @tracemill.step(name="slow")
    async def slow(gate):
        gate.set()
        await asyncio.sleep(10)

    async def main():
        gate = started()
        task = asyncio.create_task(slow(gate))
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    span = spans.named("slow")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "asyncio.exceptions.CancelledError"


def test_generator_full_consumption_records_items(spans):
    assert list(numbers(3)) == [0, 1, 2]
    span = spans.named("numbers")
    assert json.loads(span.attributes["tracemill.output"]) == [0, 1, 2]
    assert span.attributes["tracemill.output.items"] == 3
    assert "tracemill.closed_early" not in span.attributes


def test_generator_return_value_reaches_yield_from(spans):
    @tracemill.step(name="with_return")
    def with_return():
        yield 1
        return "result"

    def consumer():
        value = yield from with_return()
        return value

    gen = consumer()
    assert next(gen) == 1
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "result"
    assert len(spans.finished) == 1


def test_generator_break_ends_span_once_and_marks_closed_early(spans):
    gen = numbers(10)
    for i in gen:
        if i == 2:
            break
    gen.close()
    span = spans.named("numbers")
    assert span.attributes["tracemill.closed_early"] is True
    assert json.loads(span.attributes["tracemill.output"]) == [0, 1, 2]


def test_generator_exception_in_body_is_recorded_and_reraised(spans):
    @tracemill.step(name="fails_midway")
    def fails_midway():
        yield 1
        raise KeyError("k")

    with pytest.raises(KeyError):
        list(fails_midway())
    span = spans.named("fails_midway")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "KeyError"


def test_generator_garbage_collected_unfinished_ends_span(spans):
    gen = numbers(10)
    next(gen)
    del gen
    gc.collect()
    assert spans.named("numbers").attributes["tracemill.closed_early"] is True


def test_generator_send_and_throw_reach_the_inner_generator(spans):
    @tracemill.step(name="echo")
    def echo():
        received = []
        try:
            while True:
                value = yield len(received)
                received.append(value)
        except RuntimeError:
            yield f"caught after {received}"

    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    assert gen.throw(RuntimeError("x")) == "caught after ['a']"
    gen.close()
    assert len(spans.finished) == 1


def test_generator_does_not_leave_context_attached_across_yields(spans):
    outside = _current_span_id()
    seen_inside = []

    @tracemill.step(name="ctx_gen")
    def ctx_gen():
        for _ in range(2):
            seen_inside.append(_current_span_id())
            yield

    for _ in ctx_gen():
        assert _current_span_id() == outside
    span = spans.named("ctx_gen")
    assert seen_inside == [span.context.span_id] * 2


def test_generator_nests_under_the_span_where_it_was_created(spans):
    @tracemill.agent
    def make_stream():
        return numbers(2)

    stream = make_stream()
    assert list(stream) == [0, 1]
    parent = spans.named("invoke_agent make_stream")
    assert spans.named("numbers").parent.span_id == parent.context.span_id


def test_generator_argument_errors_surface_at_call_time(spans):
    with pytest.raises(TypeError):
        numbers(1, 2, 3)
    assert spans.finished == []


def test_async_generator_full_consumption_break_and_aclose(spans):
    async def main():
        assert [i async for i in anumbers(3)] == [0, 1, 2]
        agen = anumbers(10)
        async for i in agen:
            if i == 1:
                break
        await agen.aclose()

    asyncio.run(main())
    full, early = sorted(spans.finished, key=lambda s: s.attributes.get("tracemill.closed_early", False))
    assert full.attributes["tracemill.output.items"] == 3
    assert early.attributes["tracemill.closed_early"] is True
    assert json.loads(early.attributes["tracemill.output"]) == [0, 1]


def test_async_generator_abandoned_is_closed_by_the_loop(spans):
    async def main():
        agen = anumbers(10)
        await agen.__anext__()
        del agen
        gc.collect()
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert spans.named("anumbers").attributes["tracemill.closed_early"] is True


def test_async_generator_closed_in_another_task(spans):
    async def main():
        agen = anumbers(10)
        await agen.__anext__()
        await asyncio.create_task(agen.aclose())

    asyncio.run(main())
    assert spans.named("anumbers").attributes["tracemill.closed_early"] is True
    assert len(spans.finished) == 1


def test_async_generator_cancelled_while_iterating(spans):
    @tracemill.step(name="waiting")
    async def waiting():
        yield 1
        await asyncio.sleep(10)
        yield 2

    async def consume(gate):
        async for _ in waiting():
            gate.set()

    async def main():
        gate = asyncio.Event()
        task = asyncio.create_task(consume(gate))
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    span = spans.named("waiting")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "asyncio.exceptions.CancelledError"


def test_async_generator_exception_is_recorded(spans):
    @tracemill.step(name="afails")
    async def afails():
        yield 1
        raise ValueError("x")

    async def main():
        with pytest.raises(ValueError):
            async for _ in afails():
                pass

    asyncio.run(main())
    assert spans.named("afails").status.status_code is StatusCode.ERROR


def test_async_generator_asend_and_athrow_reach_the_inner_generator(spans):
    @tracemill.step(name="aecho")
    async def aecho():
        got = []
        try:
            while True:
                got.append((yield len(got)))
        except LookupError:
            yield f"caught {got}"

    async def main():
        agen = aecho()
        assert await agen.__anext__() == 0
        assert await agen.asend("x") == 1
        assert await agen.athrow(LookupError()) == "caught ['x']"
        await agen.aclose()

    asyncio.run(main())
    assert len(spans.finished) == 1


def test_generator_with_many_items_keeps_a_bounded_sample(spans):
    assert sum(1 for _ in numbers(250)) == 250
    span = spans.named("numbers")
    assert span.attributes["tracemill.output.items"] == 250
    output = json.loads(span.attributes["tracemill.output"])
    assert output[:3] == [0, 1, 2]
    assert output[-1] == "…[150 more items]"
