"""Detectors: small named units over the per-trace features, each naming the decisive span.

A detector is a function registered with :func:`detector`; its docstring says what it catches and
where its flag points. Failure detectors run first; near-miss detectors see which traces already
failed, so a run that failed is not also called a near miss for the same trouble. The decisive span
is the first step that went wrong (the failing tool call, the LLM decision that issued a bad call,
the first repetition of a loop), and the root only when nothing else fits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import compress
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from tracemill.errors import ConfigError
from tracemill.miner.config import MinerConfig
from tracemill.miner.features import Frame

if TYPE_CHECKING:
    from tracemill.miner.peers import PeerStats

__all__ = ["DETECTORS", "Detector", "Flag", "detect", "detector", "outcome_failed"]

Category = Literal["failure", "near_miss", "signal"]
Severity = Literal["high", "medium", "low"]


class Flag(msgspec.Struct, frozen=True):
    """One finding: a trace, its decisive span, the detector that found it and why. A struct, not a dataclass:
    a large store's mine makes tens of thousands, and a frozen dataclass is ten times slower to make."""

    trace_id: str
    span_id: str
    detector: str
    detector_version: str
    category: Category
    kind: str
    severity: Severity
    confidence: float
    evidence: str
    muted: bool = False
    """Its detector does not beat the base failure rate on this store's labelled runs (see calibration)."""

    def to_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


@dataclass
class Context:
    """What detectors read: the features, the settings, peer statistics and the traces already failed."""

    frame: Frame
    config: MinerConfig
    peers: PeerStats
    failed: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Detector:
    name: str
    version: str
    category: Category
    kind: str
    doc: str
    run: Callable[[Context, Detector], Iterator[tuple[int, str, str, Severity, float, str]]]

    def flags(self, ctx: Context) -> Iterator[tuple[int, Flag]]:
        trace_ids, roots = ctx.frame["trace_id"], ctx.frame["root_span"]
        for index, span, kind, severity, confidence, evidence in self.run(ctx, self):
            yield index, Flag(trace_ids[index], span or roots[index], self.name, self.version, self.category,
                              kind or self.kind, severity, round(confidence, 3), evidence[:1000])


DETECTORS: dict[str, Detector] = {}
"""Every detector by name, in the order they run (failures first)."""


def detector(name: str, *, version: str, category: Category, kind: str) -> Callable[[Callable[..., Any]], Detector]:
    """Register a detector function; its docstring is its documentation."""

    def register(func: Callable[..., Any]) -> Detector:
        unit = Detector(name, version, category, kind, " ".join((func.__doc__ or "").split()), func)
        DETECTORS[name] = unit
        return unit

    return register


def detect(ctx: Context, names: list[str] | None = None) -> list[Flag]:
    """Run the detectors (all, or those named), failures before near-misses."""
    unknown = sorted(set(names or ()) - set(DETECTORS))
    if unknown:
        raise ConfigError(f"unknown detector(s) {', '.join(unknown)}; the detectors are {', '.join(DETECTORS)}")
    chosen = [DETECTORS[n] for n in names] if names else list(DETECTORS.values())
    flags: list[Flag] = []
    for category in ("failure", "near_miss", "signal"):
        for unit in chosen:
            if unit.category != category or unit.name == "outcome_model":
                continue
            for index, flag in unit.flags(ctx):
                flags.append(flag)
                if category == "failure":
                    ctx.failed.add(index)
    return flags


# -- helpers ---------------------------------------------------------------------------------------


def outcome_failed(row_label: str, row_score: float | None, has_outcome: int, threshold: float) -> bool:
    """An outcome of failure: label 'failure', or a reward below the threshold."""
    if not has_outcome:
        return False
    if row_label == "failure":
        return True
    return row_label != "success" and row_score is not None and row_score < threshold


def _recovered(f: Frame, i: int, cfg: MinerConfig) -> bool:
    """Every kind of error that happened was overcome (the failing tool later succeeded; an LLM call after
    the failed one succeeded), and the run ended well: no error, an output that does not give up, no loop,
    no failed outcome."""
    if not (f["tool_errors"][i] or f["llm_errors"][i]):
        return False
    return bool(
        (not f["tool_errors"][i] or f["tool_recovered"][i])
        and (not f["llm_errors"][i] or f["llm_recovered"][i])
        and not f["root_error"][i]
        and not f["final_empty"][i]
        and not f["final_gives_up"][i]
        and f["max_repeats"][i] < cfg.loop_min_repeats
        and not outcome_failed(f["outcome_label"][i], f["outcome_score"][i], f["has_outcome"][i], cfg.outcome_threshold)
    )


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rows(f: Frame, column: str) -> Iterator[int]:
    """The rows where ``column`` is set (picked in C: most rows of most columns are not)."""
    values = f[column]
    return compress(range(len(values)), values)


_TRUNCATING_FINISH = {"length", "max_tokens", "content_filter"}
_MAYBE_TRUNCATED = re.compile("length|max_tokens|content_filter")
_LIMIT_ERROR = re.compile(r"(?i)max(imum)?[ _-]?(iterations|steps|turns)|iteration limit|recursion limit")


def _finish_reasons(raw: str) -> set[str]:
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return {raw}
    return {str(v) for v in value} if isinstance(value, list) else {str(value)}


# -- failures --------------------------------------------------------------------------------------


@detector("unhandled_error", version="1", category="failure", kind="unhandled_error")
def _unhandled_error(ctx: Context, unit: Detector) -> Iterator[Any]:
    """The run itself ended in an error (root span status Error or STATUS_CODE_ERROR). Points at the span
    where the error started: the error span that ended first, usually the deepest one."""
    f = ctx.frame
    for i in _rows(f, "root_error"):
        text = f["first_error_text"][i] or f["root_error_text"][i] or "error status on the run"
        yield i, f["first_error_span"][i], "", "high", 0.95, f"the run ended in an error: {_short(text)}"


@detector("tool_error", version="1", category="failure", kind="tool_error")
def _tool_error(ctx: Context, unit: Detector) -> Iterator[Any]:
    """A tool call failed (error status, an exception event, or a result whose text reports an error such as
    'Error: ...', {"error": ...}, 'not found', 'invalid', a traceback) and the run did not recover. Points at
    the first failing tool call."""
    f, cfg = ctx.frame, ctx.config
    for i in _rows(f, "tool_errors"):
        if _recovered(f, i, cfg):
            continue
        in_text = f["result_errors"][i] and not f["errors"][i]
        kind = "tool_result_error" if in_text else "tool_error"
        how = "reported an error in its result" if in_text else "failed"
        severity = "high" if f["root_error"][i] else "medium"
        yield (i, f["first_tool_error_span"][i], kind, severity, 0.85 if in_text else 0.9,
               f"tool {f['first_tool_error_tool'][i]!r} {how}: {_short(f['first_tool_error_text'][i])}")


@detector("llm_error", version="1", category="failure", kind="llm_error")
def _llm_error(ctx: Context, unit: Detector) -> Iterator[Any]:
    """An LLM/provider call failed (error status, exception, finish reason 'error') and the run did not recover.
    Points at the first failing LLM call."""
    f, cfg = ctx.frame, ctx.config
    for i in _rows(f, "llm_errors"):
        if not _recovered(f, i, cfg):
            yield (i, f["first_llm_error_span"][i], "", "high", 0.9,
                   f"LLM call failed: {_short(f['first_llm_error_text'][i] or 'error status')}")


@detector("loop", version="2", category="failure", kind="loop")
def _loop(ctx: Context, unit: Detector) -> Iterator[Any]:
    """The same tool was called with the same arguments loop_min_repeats times or more in one run (a call that
    recorded neither arguments nor result is never the same as another: nothing says it was). Points at the
    first repetition (the second identical call)."""
    f, cfg = ctx.frame, ctx.config
    for i, repeats in enumerate(f["max_repeats"]):
        if repeats >= cfg.loop_min_repeats and f["loop_span"][i]:
            yield (i, f["loop_span"][i], "", "high" if repeats >= 2 * cfg.loop_min_repeats else "medium",
                   min(0.99, 0.6 + 0.1 * repeats),
                   f"tool {f['loop_tool'][i]!r} called {repeats} times with the same arguments")


@detector("give_up", version="1", category="failure", kind="give_up")
def _give_up(ctx: Context, unit: Detector) -> Iterator[Any]:
    """The run gave up: its final answer refuses or says it cannot help, it hit an iteration limit, or the last
    LLM output was cut off (finish reason length or content_filter). A hand-off is not giving up (see
    ``handoff``). The final answer is the root's output, else the outermost agent's, else the last LLM
    message's text. Points at the LLM decision that produced that ending."""
    f = ctx.frame
    for i, (raw, root_error, gives_up) in enumerate(zip(f["last_finish_reasons"], f["root_error"],
                                                        f["final_gives_up"], strict=True)):
        reasons = _finish_reasons(raw) & _TRUNCATING_FINISH if _MAYBE_TRUNCATED.search(raw) else set()
        limit = root_error and _LIMIT_ERROR.search(f["root_error_text"][i] or "")
        if gives_up:
            evidence = f"the final answer gives up: {_short(f['final_output'][i])}"
        elif reasons:
            evidence = f"the last LLM output stopped with finish reason {', '.join(sorted(reasons))}"
        elif limit:
            evidence = f"the run stopped at a limit: {_short(f['root_error_text'][i])}"
        else:
            continue
        yield i, f["last_llm_span"][i], "", "medium", 0.8, evidence


@detector("invalid_tool_arguments", version="1", category="failure", kind="invalid_tool_arguments")
def _invalid_arguments(ctx: Context, unit: Detector) -> Iterator[Any]:
    """A tool was called with arguments that are not JSON, or that break the tool's recorded definition
    (gen_ai.tool.definitions: a required key missing, a wrong type, a key not allowed). Points at the LLM
    decision that issued the call (the span the tool call links to, else the LLM call just before it)."""
    f = ctx.frame
    for i in _rows(f, "bad_args_calls"):
        yield (i, f["bad_args_decision"][i] or f["bad_args_span"][i], "", "medium", 0.85,
               f"invalid arguments for tool {f['bad_args_tool'][i]!r}: {_short(f['bad_args_text'][i], 150)}")


@detector("timeout", version="1", category="failure", kind="timeout")
def _timeout(ctx: Context, unit: Detector) -> Iterator[Any]:
    """A step failed with a timeout (status message, exception or error.type mentioning a timeout or deadline).
    Points at the first step that timed out."""
    f = ctx.frame
    for i in _rows(f, "timeouts"):
        yield i, f["first_timeout_span"][i], "", "medium", 0.9, f"timed out: {_short(f['first_timeout_text'][i])}"


@detector("latency_outlier", version="1", category="failure", kind="latency_outlier")
def _latency_outlier(ctx: Context, unit: Detector) -> Iterator[Any]:
    """The run took far longer than its peers (runs of the same task, else of the same agent): robust z-score
    (median/MAD) of at least latency_z, at least latency_ratio times the median and min_excess_s seconds more,
    with min_peers peers.
    Points at the slowest step."""
    import numpy as np  # the miner extra's; the core install imports this module too

    f, cfg = ctx.frame, ctx.config
    zs, medians = ctx.peers.scores(f.peer_groups(), "duration_s", f["duration_s"])
    durations = np.asarray(f["duration_s"], dtype=float)
    slow = ((zs >= cfg.latency_z) & (durations >= cfg.latency_ratio * medians)
            & (durations - medians >= cfg.min_excess_s))
    for i in np.flatnonzero(slow).tolist():
        z, median = float(zs[i]), float(medians[i])
        yield (i, f["slowest_step"][i], "", "medium", min(0.95, 0.5 + z / 40),
               f"took {f['duration_s'][i]:.2f} s; peers' median {median:.2f} s (robust z {z:.1f})")


@detector("empty_output", version="2", category="failure", kind="empty_output")
def _empty_output(ctx: Context, unit: Detector) -> Iterator[Any]:
    """A run with LLM calls ended without a final output (no run or agent output, no text in the last LLM
    output) and without a final tool call (a run that ends by calling a tool ended with that action), while
    not ending in an error (that is unhandled_error's), in a run that recorded what it was asked (its first
    user message or its input): instrumentations record no message content unless told to (the OTel GenAI
    instrumentations' default), and a run that recorded none says nothing of its answer. Points at the last
    LLM decision."""
    f = ctx.frame
    for i in _rows(f, "final_empty"):
        if f["llm_calls"][i] and not f["root_error"][i] and f["first_user"][i]:
            yield i, f["last_llm_span"][i], "", "medium", 0.75, "the run ended without a final output"


@detector("negative_feedback", version="1", category="failure", kind="negative_feedback")
def _negative_feedback(ctx: Context, unit: Detector) -> Iterator[Any]:
    """Feedback says the run failed: an outcome of failure (or a reward below outcome_threshold), a score
    below it, a bad/thumbs-down label, or a correction. Points at the corrected or labelled span, else the
    first error, else the last LLM decision."""
    f, cfg = ctx.frame, ctx.config
    with_feedback = zip(f["has_outcome"], f["scores"], f["bad_labels"], f["corrections"], strict=True)
    for i in (i for i, feedback in enumerate(with_feedback) if any(feedback)):
        reasons = []
        if outcome_failed(f["outcome_label"][i], f["outcome_score"][i], f["has_outcome"][i], cfg.outcome_threshold):
            reasons.append("outcome failure" if f["outcome_label"][i] else f"reward {f['outcome_score'][i]:.2f}")
        if f["scores"][i] and f["min_score"][i] is not None and f["min_score"][i] < cfg.outcome_threshold:
            reasons.append(f"score {f['min_score'][i]:.2f}")
        if f["bad_labels"][i]:
            reasons.append(f"{f['bad_labels'][i]} bad label(s)")
        if f["corrections"][i]:
            reasons.append(f"{f['corrections'][i]} correction(s)")
        if reasons:
            span = (f["correction_span"][i] or f["bad_label_span"][i] or f["first_error_span"][i]
                    or f["last_llm_span"][i])
            yield i, span, "", "high", 0.95, "feedback: " + ", ".join(reasons)


# -- near misses ------------------------------------------------------------------------------------


@detector("recovered_error", version="1", category="near_miss", kind="recovered_error")
def _recovered_error(ctx: Context, unit: Detector) -> Iterator[Any]:
    """The run succeeded after a tool or LLM error: the failing tool was later called successfully (or a later
    LLM call succeeded) and the run ended with an output that does not give up. Points at the first failing
    step."""
    f, cfg = ctx.frame, ctx.config
    for i, errors in enumerate(zip(f["tool_errors"], f["llm_errors"], strict=True)):
        if not any(errors) or i in ctx.failed or not _recovered(f, i, cfg):
            continue
        tool_end, llm_end = f["first_tool_error_end"][i], f["first_llm_error_end"][i]
        if tool_end and (not llm_end or tool_end <= llm_end):
            span, what = f["first_tool_error_span"][i], f"tool {f['first_tool_error_tool'][i]!r}"
            text = f["first_tool_error_text"][i]
        else:
            span, what, text = f["first_llm_error_span"][i], "an LLM call", f["first_llm_error_text"][i]
        yield i, span, "", "low", 0.8, f"recovered after {what} failed: {_short(text)}"


@detector("retry", version="2", category="near_miss", kind="retry")
def _retry(ctx: Context, unit: Detector) -> Iterator[Any]:
    """A failed tool call was repeated with the same arguments (fewer times than a loop). Points at the first
    failed attempt."""
    f = ctx.frame
    for i in _rows(f, "retries"):
        if i not in ctx.failed and f["retry_span"][i]:
            yield i, f["retry_span"][i], "", "low", 0.7, f"{f['retries'][i]} retried tool call(s) after a failure"


@detector("excess_cost", version="1", category="near_miss", kind="excess_steps")
def _excess_cost(ctx: Context, unit: Detector) -> Iterator[Any]:
    """A run that did not fail used far more steps (LLM + tool calls), tokens or time than its peers (runs of
    the same task, else the same agent): robust z-score of at least excess_z and at least excess_ratio times
    the median (for time also min_excess_s seconds more), with min_peers peers. Points at the first step
    beyond the peers' median step count
    (filled in by localization), else the slowest step."""
    import numpy as np

    f, cfg = ctx.frame, ctx.config
    groups, columns = f.peer_groups(), {"steps": f.steps(), "tokens": f["tokens"], "duration_s": f["duration_s"]}
    excess = {}
    for metric, values in columns.items():
        zs, medians = ctx.peers.scores(groups, metric, values)
        array = np.asarray(values, dtype=float)
        over = (zs >= cfg.excess_z) & (array >= cfg.excess_ratio * medians)
        if metric == "duration_s":
            over &= array - medians >= cfg.min_excess_s
        excess[metric] = (zs, medians, over)
    anything = np.logical_or.reduce([over for _, _, over in excess.values()])
    for i in np.flatnonzero(anything).tolist():
        if i in ctx.failed:
            continue
        found = []
        for (metric, (zs, medians, over)), label in zip(excess.items(), ("steps", "tokens", "seconds"), strict=True):
            if over[i]:
                value, z, median = columns[metric][i], float(zs[i]), float(medians[i])
                found.append((metric, f"{value:.4g} {label} vs peers' median {median:.4g} (robust z {z:.1f})", z))
        if found:
            kind = {"steps": "excess_steps", "tokens": "excess_tokens", "duration_s": "excess_time"}[found[0][0]]
            z = max(item[2] for item in found)
            yield i, f["slowest_step"][i], kind, "low", min(0.9, 0.5 + z / 40), "; ".join(item[1] for item in found)


@detector("outcome_near_threshold", version="1", category="near_miss", kind="outcome_near_threshold")
def _near_threshold(ctx: Context, unit: Detector) -> Iterator[Any]:
    """The run's outcome reward (or its lowest score) is just above outcome_threshold, within
    near_threshold_margin. Points at the last LLM decision."""
    f, cfg = ctx.frame, ctx.config
    low, high = cfg.outcome_threshold, cfg.outcome_threshold + cfg.near_threshold_margin
    for i, feedback in enumerate(zip(f["has_outcome"], f["scores"], strict=True)):
        if i in ctx.failed or not any(feedback):
            continue
        values = []
        if f["has_outcome"][i] and f["outcome_label"][i] == "" and f["outcome_score"][i] is not None:
            values.append(("reward", f["outcome_score"][i]))
        if f["scores"][i] and f["min_score"][i] is not None:
            values.append(("score", f["min_score"][i]))
        near = [(name, v) for name, v in values if low <= v < high]
        if near:
            name, value = near[0]
            yield i, f["last_llm_span"][i], "", "low", 0.7, f"{name} {value:.2f} is just above the threshold {low:.2f}"


@detector("outcome_model", version="1", category="failure", kind="predicted_failure")
def _outcome_model(ctx: Context, unit: Detector) -> Iterator[Any]:
    """The learned scorer gives the run a failure probability above the threshold chosen on its
    cross-validated predictions (only when outcome feedback trained it). Points at the first error, else the
    last LLM decision. Its flags are made by the scorer, not in the detector pass."""
    return iter(())


# -- signals ---------------------------------------------------------------------------------------


@detector("handoff", version="1", category="signal", kind="handoff")
def _handoff(ctx: Context, unit: Detector) -> Iterator[Any]:
    """The run ended by handing the user over to a human or another agent: its final action calls a hand-off
    tool (transfer_to_human_agents, escalate, handoff...) or its final answer says it transfers the user. Often
    the correct ending (in customer service), so a signal, not a failure, unless this store's outcomes say
    hand-offs fail here (calibration). Points at the LLM decision that handed off."""
    f = ctx.frame
    for i in _rows(f, "final_handoff"):
        if f["root_error"][i]:
            continue
        how = (f"called {f['final_tool'][i]}({_short(f['final_arguments'][i], 150)})" if f["final_kind"][i] ==
               "tool_call" else f"said: {_short(f['final_output'][i])}")
        yield i, f["last_llm_span"][i], "", "low", 0.8, f"the run ended with a hand-off: {how}"
