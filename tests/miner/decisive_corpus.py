"""Multi-agent runs that fail without an error, each with the step where it went wrong known.

A planner, a researcher (with a search tool), an analyst, sometimes a verifier, and a writer answer
shopping and reporting requests ("the cheapest nonstop flight under $400", "the Q3 revenue of the west
region excluding returns") over tables a tool returns. Runs vary the way production runs do: a search
that returns two pages, a transient tool error and its retry, a planner that thinks twice, an optional
verifier that approves, different tasks repeated several times. Most runs succeed. The failures raise
nothing; the answer is just wrong, because one step went wrong and later steps trusted it:

- ``skipped_constraint``: the planner's plan leaves out a condition of the request (decisive: the plan);
- ``wrong_args``: the researcher searches for another date, city or quarter than asked (its tool call);
- ``wrong_fact``: the researcher's summary misstates a value the tool returned (the summary);
- ``wrong_row``: the analyst names one row and quotes another row's value (the analyst's answer);
- ``stale_source``: the tool itself returns a wrong value (the tool span);
- ``writer_slip``: the final answer misquotes the analyst's choice (the writer's answer).

Written through tracemill's tracer into a real store, like an instrumented agent would.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracemill
from tracemill.collector.ingest.exporter import StoreSpanExporter
from tracemill.collector.store.store import Store

FAILURES = ("skipped_constraint", "wrong_args", "wrong_fact", "wrong_row", "stale_source", "writer_slip")
_FAILURE_SHARE = (0.22, 0.18, 0.2, 0.2, 0.08, 0.12)


@dataclass(frozen=True)
class Domain:
    """One kind of request: what the tool searches, what a row holds, which condition the request adds."""

    name: str
    tool: str
    param: str  # the search argument the request names
    params: tuple[str, ...]
    items: tuple[str, ...]
    unit: str
    condition: str  # the request's extra condition, a column of the rows
    verb: str  # select the cheapest matching row, or look a named row up and subtract a column
    request: str


DOMAINS = (
    Domain("flights", "search_flights", "date", ("2025-03-04", "2025-03-05", "2025-03-11", "2025-04-01"),
           ("AF 1031", "LH 402", "BA 117", "UA 88", "DL 640", "KL 1223"), "$", "nonstop", "select",
           "Find me the cheapest nonstop flight from Paris to New York on {param} under ${budget}."),
    Domain("hotels", "search_hotels", "city", ("Lisbon", "Porto", "Seville", "Valencia"),
           ("Casa Azul", "Hotel Miramar", "The Dock", "Palacio Sol", "Riverside Inn"), "€", "parking", "select",
           "I need a hotel in {param} with parking for three nights, under €{budget} a night. Which is cheapest?"),
    Domain("suppliers", "query_suppliers", "part", ("M6 bolts", "hinges", "gaskets", "brackets"),
           ("Acme", "Borealis", "Cortex Ltd", "Dunmore", "Everline"), "$", "certified", "select",
           "Which certified supplier has the lowest unit price for {param}? Our ceiling is ${budget}."),
    Domain("sales", "query_sales", "quarter", ("Q1", "Q2", "Q3", "Q4"),
           ("north", "south", "east", "west", "central"), "$", "returns", "lookup",
           "What was the revenue of the {item} region in {param}, excluding returns?"),
)


@dataclass
class Written:
    """A run as written: its trace, its task, whether and how it failed, and the decisive span."""

    trace_id: str
    task_id: str
    failure: str = ""
    decisive: str = ""


@dataclass
class _Task:
    domain: Domain
    param: str
    item: str
    budget: int
    task_id: str


def _rows(task: _Task, rng: random.Random, param: str) -> list[dict[str, Any]]:
    d = task.domain
    names = rng.sample(d.items, k=min(len(d.items), rng.randint(4, 5)))
    if d.verb == "lookup" and task.item not in names:
        names[0] = task.item
    rows = []
    for name in names:
        value = rng.randint(40, 90) * (10 if d.verb == "lookup" else 5)
        row: dict[str, Any] = {"name": name, d.param: param, "price" if d.verb == "select" else "revenue": value}
        row[d.condition] = rng.random() < 0.5 if d.verb == "select" else rng.randint(2, 9) * 5
        rows.append(row)
    if d.verb == "select":  # make sure the cheapest row breaks the condition, so skipping it matters
        cheapest = min(rows, key=lambda r: r["price"])
        cheapest[d.condition] = False
        if not any(r[d.condition] for r in rows):
            max(rows, key=lambda r: r["price"])[d.condition] = True
    return rows


def _best(task: _Task, rows: list[dict[str, Any]], keep_condition: bool) -> tuple[str, int]:
    d = task.domain
    if d.verb == "lookup":
        row = next(r for r in rows if r["name"] == task.item)
        return row["name"], row["revenue"] - (row[d.condition] if keep_condition else 0)
    pool = [r for r in rows if r[d.condition] or not keep_condition]
    row = min(pool, key=lambda r: r["price"])
    return row["name"], row["price"]


@dataclass
class _Context:
    """What the scripted agents know beyond their inputs (kept out of their recorded arguments)."""

    task: _Task
    failure: str
    rng: random.Random
    seen: dict[str, str] = field(default_factory=dict)  # role -> span id of the step that played it


_NOW: list[_Context] = []


@tracemill.agent(name="planner", version="3")
def _planner(request: str) -> str:
    task, skip, rng, seen = _NOW[0].task, _NOW[0].failure == "skipped_constraint", _NOW[0].rng, _NOW[0].seen
    d = task.domain
    if rng.random() < 0.3:
        _llm("planner-1", request, f"The user wants {d.name} data for {task.param}. I will plan the search first.")
    keep = "" if skip else (f"keep only {d.condition} options, " if d.verb == "select"
                            else f"subtract {d.condition} from the revenue, ")
    goal = f"pick the cheapest under {d.unit}{task.budget}" if d.verb == "select" else f"report the {task.item} row"
    plan = f"Plan: search {d.tool} for {d.param} {task.param}; {keep}{goal}; write a short answer."
    seen["plan"] = _llm("planner-1", request, plan)
    return plan


def _corrupt_source(task: _Task, rows: list[dict[str, Any]], rng: random.Random) -> str:
    """The data source itself is wrong about one row: the row that then decides the answer."""
    d = task.domain
    if d.verb == "lookup":
        target = next(r for r in rows if r["name"] == task.item)
        target["revenue"] += 10 * rng.randint(3, 9)
    else:
        target = max(rows, key=lambda r: r["price"])
        target["price"] = min(r["price"] for r in rows) - 5 * rng.randint(1, 4)
        target[d.condition] = True
    return str(target["name"])


@tracemill.agent(name="researcher", version="3")
def _researcher(plan: str) -> list[dict[str, Any]]:
    task, failure, rng, seen = _NOW[0].task, _NOW[0].failure, _NOW[0].rng, _NOW[0].seen
    d = task.domain
    param = rng.choice([p for p in d.params if p != task.param]) if failure == "wrong_args" else task.param
    rows = _rows(task, rng, param)
    stale = _corrupt_source(task, rows, rng) if failure == "stale_source" else ""
    pages = [rows[:3], rows[3:]] if len(rows) > 3 and rng.random() < 0.3 else [rows]
    for number, page in enumerate(pages):
        arguments = {d.param: param, "page": number + 1}
        asked = _llm("researcher-2", plan, "", tool=(d.tool, arguments))
        seen.setdefault("args", asked)
        if rng.random() < 0.15:  # a transient failure, retried at once
            _tool(d.tool, arguments, None, error="upstream timeout, please retry")
        tool_span = _tool(d.tool, arguments, page)
        if stale and any(r["name"] == stale for r in page):
            seen["tool"] = tool_span
    told = [dict(r) for r in rows]
    if failure == "wrong_fact":
        if d.verb == "lookup":
            victim = next(r for r in told if r["name"] == task.item)
            victim["revenue"] += 10 * rng.randint(2, 9)
        else:  # the cheapest row breaks the condition; the summary says it does not
            min(told, key=lambda r: r["price"])[d.condition] = True
    lines = [f"{r['name']}: {d.unit}{r.get('price', r.get('revenue'))}, {d.condition} {r[d.condition]}" for r in told]
    summary = f"Found {len(told)} results for {param}: " + "; ".join(lines)
    seen["summary"] = _llm("researcher-2", plan, summary)
    seen["summary_text"] = summary
    return told


@tracemill.agent(name="analyst", version="3")
def _analyst(prompt: str, rows: list[dict[str, Any]]) -> str:
    task, failure, rng, seen = _NOW[0].task, _NOW[0].failure, _NOW[0].rng, _NOW[0].seen
    skip = failure == "skipped_constraint"
    name, value = _best(task, rows, keep_condition=not skip)
    if failure == "wrong_row":
        other = rng.choice([r for r in rows if r["name"] != name])
        value = other.get("price", other.get("revenue"))
        if task.domain.verb == "lookup" and not skip:
            value -= other[task.domain.condition]
    text = f"Best match: {name} at {task.domain.unit}{value}."
    seen["analyst"] = _llm("analyst-1", prompt, text)
    return text


@tracemill.agent(name="verifier", version="1")
def _verifier(choice: str) -> None:
    _llm("verifier-1", choice, f"Checked: {choice} It fits the request.")


@tracemill.agent(name="writer", version="2")
def _writer(choice: str) -> str:
    task, failure, rng, seen = _NOW[0].task, _NOW[0].failure, _NOW[0].rng, _NOW[0].seen
    name, _, quoted = choice.removeprefix("Best match: ").rstrip(".").rpartition(" at ")
    value = int(quoted.lstrip(task.domain.unit))
    if failure == "writer_slip":
        value = value + rng.choice((-1, 1)) * 5 * rng.randint(2, 6)
    unit = task.domain.unit
    text = (f"The best option is {name} at {unit}{value}." if task.domain.verb == "select"
            else f"The {task.item} region made {unit}{value} in {task.param} after returns.")
    seen["writer"] = _llm("writer-1", choice, text)
    return text


def _llm(model: str, prompt: str, answer: str, tool: tuple[str, dict] | None = None) -> str:
    with tracemill.llm_call(provider="scripted", model=model,
                            input_messages=[{"role": "user", "content": prompt}]) as call:
        calls = [{"id": "call_1", "function": {"name": tool[0], "arguments": json.dumps(tool[1])}}] if tool else []
        call.record_output(content=answer or None, tool_calls=calls,
                           finish_reasons=["tool_calls" if tool else "stop"], input_tokens=40, output_tokens=20)
        return format(call.span_context.span_id, "016x")


def _tool(name: str, arguments: dict, result: Any, error: str = "") -> str:
    span_id = ""
    try:
        with tracemill.tool_call(name, call_id="call_1", arguments=arguments) as tool:
            span_id = format(tool.span_context.span_id, "016x")
            if error:
                raise TimeoutError(error)
            tool.record_result(result)
    except TimeoutError:
        pass
    return span_id


def _play(task: _Task, failure: str, rng: random.Random) -> tuple[str, str]:
    """Run the agents; return the final answer and the decisive span id ('' for a good run)."""
    request = task.domain.request.format(param=task.param, budget=task.budget, item=task.item)
    _NOW[:] = [_Context(task, failure, rng)]
    seen = _NOW[0].seen
    plan = _planner(request)
    rows = _researcher(plan)
    choice = _analyst(f"{plan}\n{seen['summary_text']}", rows)
    if rng.random() < 0.4:
        _verifier(choice)
    answer = _writer(choice)
    decisive = {"skipped_constraint": seen["plan"], "wrong_args": seen.get("args", ""),
                "wrong_fact": seen["summary"], "stale_source": seen.get("tool", ""),
                "wrong_row": seen["analyst"], "writer_slip": seen["writer"]}.get(failure, "")
    return answer, decisive


def _tasks(rng: random.Random, count: int) -> list[_Task]:
    out = []
    for number in range(count):
        domain = DOMAINS[number % len(DOMAINS)]
        out.append(_Task(domain, rng.choice(domain.params), rng.choice(domain.items), rng.randint(30, 90) * 5,
                         f"{domain.name}-{number}"))
    return out


def runs(seed: int, *, failed: int, good: int, tasks: int = 24) -> Iterator[tuple[_Task, str]]:
    """The (task, failure) of every run: ``failed`` failures spread over the modes, ``good`` successes."""
    rng = random.Random(seed)
    pool = _tasks(rng, tasks)
    plan = [(rng.choice(pool), "") for _ in range(good)]
    plan += [(rng.choice(pool), rng.choices(FAILURES, _FAILURE_SHARE)[0]) for _ in range(failed)]
    rng.shuffle(plan)
    yield from plan


def write(store: Store, seed: int, *, failed: int, good: int, tasks: int = 24) -> list[Written]:
    """Play the runs through the tracer into ``store``; failed runs get a failed outcome from ``ci``."""
    rng = random.Random(seed + 1)
    memory = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(memory), service_name="research-desk", env={})
    written = []
    try:
        for task, failure in runs(seed, failed=failed, good=good, tasks=tasks):
            request = task.domain.request.format(param=task.param, budget=task.budget, item=task.item)
            with tracemill.run("research_desk", task_id=task.task_id, input=request) as run:
                answer, decisive = _play(task, failure, rng)
                run.set_output(answer)
            written.append(Written(run.trace_id, task.task_id, failure, decisive))
        tracemill.force_flush()
        StoreSpanExporter(store).export(memory.get_finished_spans())
    finally:
        tracemill.shutdown()
    from tracemill.collector.feedback.feedback import record_feedback

    outcomes = [{"trace_id": w.trace_id, "name": "outcome", "author": "ci", "kind": "outcome",
                 "value": {"success": not w.failure}} for w in written]
    for start in range(0, len(outcomes), 500):
        record_feedback(store, outcomes[start:start + 500])
    return written


def mark(store: Store, written: list[Written], author: str = "reviewer") -> None:
    """A reviewer marks the decisive step of each failed run in ``written``."""
    from tracemill.collector.feedback.feedback import record_feedback

    items = [{"trace_id": w.trace_id, "span_id": w.decisive, "name": "decisive", "author": author,
              "kind": "decisive"} for w in written if w.failure]
    for start in range(0, len(items), 500):
        record_feedback(store, items[start:start + 500])
