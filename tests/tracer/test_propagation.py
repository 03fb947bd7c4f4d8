"""Context follows threads and asyncio tasks: work done in a worker nests under its caller."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracemill


@tracemill.tool
def work(i):
    return i * 2


def _assert_children_of(spans, parent_name: str, child_name: str, count: int) -> None:
    parent = spans.named(parent_name)
    children = [s for s in spans.finished if s.name == child_name]
    assert len(children) == count
    assert all(c.parent is not None and c.parent.span_id == parent.context.span_id for c in children)


def test_thread_pool_executor_submit_and_map_nest_under_caller(spans):
    @tracemill.agent
    def fan_out():
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = [pool.submit(work, i) for i in range(3)]
            mapped = list(pool.map(work, range(3)))
        return [f.result() for f in futures] + mapped

    assert fan_out() == [0, 2, 4, 0, 2, 4]
    _assert_children_of(spans, "invoke_agent fan_out", "execute_tool work", 6)


def test_threading_thread_and_subclass_nest_under_caller(spans):
    results = []

    class Worker(threading.Thread):
        def run(self):
            results.append(work(10))

    @tracemill.agent
    def spawn():
        threads = [threading.Thread(target=lambda: results.append(work(1))), Worker()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    spawn()
    assert sorted(results) == [2, 20]
    _assert_children_of(spans, "invoke_agent spawn", "execute_tool work", 2)


def test_asyncio_tasks_and_to_thread_nest_under_caller(spans):
    @tracemill.tool
    async def awork(i):
        await asyncio.sleep(0)
        return i

    @tracemill.agent
    async def gather():
        results = await asyncio.gather(*(asyncio.create_task(awork(i)) for i in range(3)))
        results.append(await asyncio.to_thread(work, 5))
        return results

    assert asyncio.run(gather()) == [0, 1, 2, 10]
    _assert_children_of(spans, "invoke_agent gather", "execute_tool awork", 3)
    _assert_children_of(spans, "invoke_agent gather", "execute_tool work", 1)


def test_thread_propagation_can_be_turned_off():
    exporter = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(exporter), propagate_threads=False, env={})
    try:
        @tracemill.agent
        def fan_out():
            with ThreadPoolExecutor(max_workers=1) as pool:
                return pool.submit(work, 1).result()

        fan_out()
        child = next(s for s in exporter.get_finished_spans() if s.name == "execute_tool work")
        assert child.parent is None
    finally:
        tracemill.shutdown()


def test_only_the_tracing_context_is_carried_into_threads(spans):
    import contextvars

    request_id = contextvars.ContextVar("request_id", default="fresh")
    seen = []

    @tracemill.agent
    def spawn():
        request_id.set("caller")
        thread = threading.Thread(target=lambda: seen.append(request_id.get()))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(max_workers=1) as pool:
            seen.append(pool.submit(request_id.get).result())

    spawn()
    assert seen == ["fresh", "fresh"]


def test_pool_workers_do_not_keep_the_first_callers_span(spans):
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        @tracemill.agent
        def first():
            return pool.submit(work, 1).result()

        first()
        # a call submitted outside any span runs outside any span, even on the same worker thread
        assert pool.submit(lambda: trace_api.get_current_span().get_span_context().is_valid).result() is False
        pool.submit(work, 2).result()
        orphan = [s for s in spans.finished if s.name == "execute_tool work"][-1]
        assert orphan.parent is None
    finally:
        pool.shutdown()
