"""Per-trace features, computed inside ClickHouse in one GROUP BY TraceId query.

Every expression reads the OTel GenAI conventions first and falls back on what other instrumentations write
(span-name prefixes, OpenInference attributes, the indexed ``gen_ai.prompt.N.*`` and
``gen_ai.completion.N.*``, ``llm.request.type`` and ``traceloop.*`` attributes of OpenLLMetry's releases
before the current conventions), so the miner works on traces from the plain OTel SDK, OpenLLMetry,
OpenInference or the official collector, not only on tracemill's. The query returns one row per trace with
counts, the first failing span of each kind (the decisive-span candidates), the tool sequence and its
repetitions, cost, the final output and the trace's feedback, so nothing span-level is pulled into Python.
"""

from __future__ import annotations

from tracemill.collector.store.query import attribute
from tracemill.collector.store.schema import FEEDBACK_TABLE, SPANS_TABLE, quote_literal

__all__ = ["FEEDBACK_COLUMNS", "FEEDBACK_PER_TRACE", "FLATTENED_INPUTS", "GENAI_USER_TURNS", "QUERY_SETTINGS",
           "RESULT_ERROR_LEAD_PATTERN", "RESULT_ERROR_PATTERN", "TIMEOUT_PATTERN", "trace_features_sql"]  # fmt: skip

RESULT_ERROR_PATTERN = (
    r"(?i)^\s*\"?\s*(error|exception|failed|failure)\b"
    # a key naming an error with a value that is one: not null, false, 0, "", [] or {}
    r"|\"(error|err|errors|exception|error_message)\"\s*:\s*(\"[^\"]|\{\s*\"|\[\s*[^\]\s]|true|-?[1-9])"
    r"|\"status\"\s*:\s*\"(error|failed|failure)\""
    r"|\"success\"\s*:\s*false"
    r"|traceback \(most recent call last\)"
    r"|\b[45]\d\d (client|server) error\b"
)
"""A tool result that reports a failure in its text, with the span status left unset."""

RESULT_ERROR_LEAD_PATTERN = r"(?i)\bnot found\b|\binvalid\b|\bpermission denied\b|\bno such\b|\bunauthori[sz]ed\b"
"""Phrases that report a failure only near the start of a result: "User not found", "Invalid date".
Deep inside a long result (a fetched page, retrieved documents) they are content, not the tool's verdict."""

RESULT_ERROR_LEAD_CHARS = 120

TIMEOUT_PATTERN = r"(?i)time[d]?[ _-]?out|deadline exceeded"

_ERROR_STATUS = "StatusCode IN ('Error', 'STATUS_CODE_ERROR')"


_q = quote_literal
"""A ClickHouse string literal (the short name the miner's SQL builders use)."""


FLATTENED_INPUTS = {"oi": ("llm.input_messages.", ".message."), "prompts": ("gen_ai.prompt.", ".")}
"""Flattened input messages, as (key prefix, key infix): OpenInference's ``llm.input_messages.N.message.role``
and OpenLLMetry's ``gen_ai.prompt.N.role`` (with ``content`` beside each role)."""


def _flat_user(i: int) -> str:
    """The conditions and values of a multiIf: flattened input message ``i`` when it is the user's, in each
    convention of :data:`FLATTENED_INPUTS`."""
    return ", ".join(f"{attribute(f'{prefix}{i}{infix}role')} = 'user', {attribute(f'{prefix}{i}{infix}content')}"
                     for prefix, infix in FLATTENED_INPUTS.values())


def _first_set(*keys: str) -> str:
    """The first of these span attributes that is set."""
    *earlier, last = keys
    return "multiIf(" + "".join(f"{attribute(k)} != '', {attribute(k)}, " for k in earlier) + f"{attribute(last)})"


def span_columns(bad_args_check: str) -> str:
    """The per-span derived columns the aggregate reads (``bad_args_check`` is the tool-schema check)."""
    oi_kind, traceloop_kind = attribute("openinference.span.kind"), attribute("traceloop.span.kind")
    service_version = attribute("service.version", "ResourceAttributes")
    error_type = attribute("error.type")
    return f"""
        TraceId, SpanId, ParentSpanId, SpanName, ServiceName, Timestamp AS ts,
        toUnixTimestamp64Nano(Timestamp) AS start_ns, start_ns + Duration AS end_ns, Duration AS dur,
        multiIf(GenAiOperation != '', GenAiOperation,
                startsWith(SpanName, 'execute_tool '), 'execute_tool',
                match(SpanName, '^(chat|text_completion|generate_content) '), 'chat',
                {oi_kind} = 'LLM', 'chat', {oi_kind} = 'TOOL', 'execute_tool',
                {attribute('llm.request.type')} IN ('chat', 'completion'), 'chat',
                {traceloop_kind} = 'tool', 'execute_tool',
                {oi_kind} = 'AGENT' OR {traceloop_kind} = 'agent' OR startsWith(SpanName, 'invoke_agent '),
                'invoke_agent',
                '') AS op,
        op IN ('chat', 'text_completion', 'generate_content') AS is_llm,
        op = 'execute_tool' AS is_tool,
        if(is_tool, multiIf(ToolName != '', ToolName, {attribute('tool.name')} != '', {attribute('tool.name')},
                            {attribute('traceloop.entity.name')} != '', {attribute('traceloop.entity.name')},
                            startsWith(SpanName, 'execute_tool '), substring(SpanName, 14), SpanName), '') AS tool,
        if(is_tool, {_first_set('gen_ai.tool.call.arguments', 'input.value', 'traceloop.entity.input')}, '') AS args,
        if(is_tool, {_first_set('gen_ai.tool.call.result', 'output.value', 'tracemill.output',
                                'traceloop.entity.output')}, '') AS result,
        {_ERROR_STATUS} AS status_error,
        arrayStringConcat(arrayFilter(x -> x != '', arrayMap((n, at) -> if(n = 'exception',
            concat(at['exception.type'], ': ', at['exception.message']), ''), Events.Name, Events.Attributes)), '; ')
            AS exception_text,
        status_error OR exception_text != '' AS span_error,
        if(span_error, trimBoth(concat(StatusMessage,
                                       if(StatusMessage = '' AND exception_text != '', exception_text, ''),
                                       if(StatusMessage = '' AND exception_text = '', {error_type}, ''))), '')
            AS error_text,
        if(is_tool AND NOT span_error,
           match(result, {_q(RESULT_ERROR_PATTERN)})
               OR match(substring(result, 1, {RESULT_ERROR_LEAD_CHARS}), {_q(RESULT_ERROR_LEAD_PATTERN)}),
           0) AS result_error,
        is_tool AND (span_error OR result_error) AS tool_failed,
        is_llm AND (span_error OR position(finish_reasons, '"error"') > 0) AS llm_failed,
        if(span_error, match(concat(error_text, ' ', {error_type}), {_q(TIMEOUT_PATTERN)}), 0) AS timed_out,
        if(is_tool AND args != '' AND NOT span_error, {bad_args_check}, 0) AS bad_args,
        if(length(Links.SpanId) > 0, Links.SpanId[1], '') AS link_span,
        InputTokens + OutputTokens + if(is_llm AND InputTokens + OutputTokens = 0,
            toUInt64OrZero({_first_set('llm.token_count.prompt', 'gen_ai.usage.prompt_tokens')})
            + toUInt64OrZero({_first_set('llm.token_count.completion', 'gen_ai.usage.completion_tokens')}), 0)
            AS tokens,
        ParentSpanId = '' AS is_root,
        if(is_llm, {attribute('gen_ai.output.messages')}, '') AS genai_output,
        if(is_llm, if(genai_output != '', genai_output, {attribute('output.value')}), '') AS llm_output,
        if(is_llm, {_first_set('gen_ai.response.finish_reasons', 'gen_ai.completion.0.finish_reason')}, '')
            AS finish_reasons,
        {_conversation_columns()},
        TaskId AS task_id,
        AgentName AS agent_name,
        if(is_root OR op = 'invoke_agent',
           multiIf({service_version} != '', {service_version}, {attribute('gen_ai.agent.version')}), '') AS version"""


def _conversation_columns() -> str:
    """The per-span columns of the conversation: the run's input and output, the first user turn, the last
    answer and tool call (read by :mod:`tracemill.miner.final_action` and the scorer's text features). The
    flattened messages are looked up only on LLM spans without the GenAI JSON messages: most spans of a store
    follow one convention, and each lookup scans the span's attributes."""
    return f"""
        if(is_root OR op = 'invoke_agent', {_first_set('tracemill.output', 'output.value', 'gen_ai.output.messages',
                                                       'traceloop.entity.output')}, '') AS run_output,
        is_llm AND genai_output = '' AS flat_output,
        if(flat_output, {_first_set('llm.output_messages.0.message.content', 'gen_ai.completion.0.content')}, '')
            AS flat_text,
        if(ConversationId != '', ConversationId, {attribute('session.id')}) AS conversation,
        if(is_root, {_first_set('tracemill.input', 'input.value', 'traceloop.entity.input')}, '') AS root_input,
        if(is_llm, {attribute('gen_ai.input.messages')}, '') AS genai_input,
        if(is_llm AND genai_input = '', multiIf({_flat_user(0)}, {_flat_user(1)}, {_flat_user(2)}, ''), '')
            AS flat_first_user,
        if(flat_output, {_first_set('llm.output_messages.0.message.tool_calls.0.tool_call.function.name',
                                    'gen_ai.completion.0.tool_calls.0.name')}, '') AS flat_tool,
        if(flat_output, {_first_set('llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments',
                                    'gen_ai.completion.0.tool_calls.0.arguments')}, '') AS flat_args"""


_MESSAGES_TYPE = "Array(Tuple(role String, content String, parts Array(Tuple(type String, content String))))"
"""JSON chat messages as ``JSONExtract`` reads them: a content that is not a string comes back as its raw JSON."""

GENAI_USER_TURNS = f"""(messages) -> arrayFilter(x -> x != '', arrayMap(m -> multiIf(
        startsWith(m.2, '[{{'), arrayStringConcat(arrayMap(p -> if(p.2 != '', p.2, p.3), arrayFilter(p -> p.1 = 'text',
            JSONExtract(m.2, 'Array(Tuple(type String, text String, content String))'))), ' '),
        m.2 != '', m.2,
        arrayStringConcat(arrayMap(p -> p.2, arrayFilter(p -> p.1 = 'text', m.3)), ' ')),
    arrayFilter(m -> m.1 = 'user', JSONExtract(messages, '{_MESSAGES_TYPE}')))) AS genai_user_turns"""
"""A lambda in a WITH clause: the texts of the user's turns in JSON chat messages: a string ``content``, the text
parts of a ``content`` list (``{"type": "text", "text": ...}``, as OpenAI's API writes them), or the GenAI
conventions' text ``parts`` joined. The messages are parsed once, into typed tuples (``JSONExtract``), not once
per field."""


def _depth_expr(levels: int = 6) -> str:
    """The depth of the span tree (capped at ``levels`` + 1), following parent links from each span. A span's
    parent is found once, by its position in the trace's span ids (``parent_index``, 0 when the parent is not in
    the trace); each further level follows positions, not ids. A parent id that is set but not in the trace
    (a remote parent) still counts as a level. The ids are gathered as 64-bit hashes (0: no parent), which are
    cheaper to gather and compare than strings (about 5% of the feature query)."""
    levels_up = ["parent_index"]
    for _ in range(levels - 2):
        levels_up.append(f"arrayMap(i -> parent_index[i], {levels_up[-1]})")
    return "1 + arrayExists(p -> p != 0, parents) + " + " + ".join(
        f"arrayExists(i -> has_parent[i], {level})" for level in levels_up
    )


def trace_features_sql(*, where: str, bad_args_check: str = "0", settings: bool = True) -> str:
    """The per-trace features of the spans selected by ``where``, without feedback: what a trace's spans say, which
    :mod:`tracemill.miner.feature_cache` keeps once the trace is mined."""
    return f"""
WITH
    {GENAI_USER_TURNS},
    arrayMap(x -> x.4, tool_steps) AS call_keys,
    arrayEnumerateUniq(call_keys) AS occurrences,
    arrayMap(x -> x.4, arrayFilter(x -> x.5, tool_steps)) AS failed_keys,
    arrayMap(p -> indexOf(span_ids, p), parents) AS parent_index,
    arrayMap(p -> p != 0, parents) AS has_parent
SELECT{_trace_features()}
FROM (
    SELECT
        TraceId,
{_SPAN_AGGREGATES}
    FROM (SELECT {span_columns(bad_args_check)} FROM {SPANS_TABLE} WHERE TraceId != '' AND {where})
    GROUP BY TraceId
)
{"SETTINGS " + QUERY_SETTINGS if settings else ""}"""


QUERY_SETTINGS = "join_use_nulls = 0, short_circuit_function_evaluation = 'force_enable'"
"""The settings the feature queries run with: a missing join row reads as the column's default, and a
function's branches run only on the rows they apply to (the JSON checks are costly)."""

FEEDBACK_COLUMNS = (
    "fb.outcome_label, fb.outcome_score, fb.has_outcome, fb.min_score, fb.scores, fb.bad_labels, fb.bad_label_span, "
    "fb.corrections, fb.correction_span"
)
"""The feedback columns of a trace's features (from :data:`FEEDBACK_PER_TRACE`, joined as ``fb``)."""


_CALL_KEY = "if(args = '' AND result = '', cityHash64(SpanId), cityHash64(tool, args))"
"""What makes two tool calls the same call (for loops and retries): the tool and its arguments. A call that
recorded neither arguments nor result (instrumentations record no content unless told to) is like no other:
calls that look alike only because nothing was recorded are no evidence of a loop."""

_SPAN_AGGREGATES = f"""        count() AS spans,
        countIf(is_llm) AS llm_calls,
        countIf(is_tool) AS tool_calls,
        countIf(span_error) AS errors,
        countIf(tool_failed) AS tool_errors,
        countIf(result_error) AS result_errors,
        countIf(llm_failed) AS llm_errors,
        countIf(timed_out) AS timeouts,
        countIf(bad_args) AS bad_args_calls,
        sum(tokens) AS tokens,
        (max(end_ns) - min(start_ns)) / 1e9 AS duration_s,
        min(start_ns) / 1e9 AS start_s,
        if(countIf(is_root) > 0, argMinIf(SpanId, start_ns, is_root), argMin(SpanId, start_ns)) AS root_span,
        if(countIf(is_root) > 0, argMinIf(SpanName, start_ns, is_root), argMin(SpanName, start_ns)) AS root_name,
        maxIf(span_error, is_root) AS root_error,
        argMinIf(error_text, start_ns, is_root) AS root_error_text,
        argMinIf(run_output, start_ns, is_root) AS root_output,
        argMinIf(run_output, start_ns, NOT is_root AND op = 'invoke_agent' AND run_output != '') AS agent_output,
        anyIf(task_id, task_id != '') AS task_id,
        anyIf(agent_name, agent_name != '') AS agent_name,
        anyIf(conversation, conversation != '') AS conversation_id,
        substring(argMinIf(root_input, start_ns, is_root), 1, 2000) AS root_input,
        argMinIf(genai_input, start_ns, is_llm AND genai_input != '') AS first_llm_messages,
        substring(argMinIf(flat_first_user, start_ns, is_llm AND flat_first_user != ''), 1, 2000) AS first_flat_user,
        argMin(ServiceName, start_ns) AS service,
        anyIf(version, version != '') AS version,
        argMinIf(SpanId, end_ns, span_error) AS first_error_span,
        argMinIf(error_text, end_ns, span_error) AS first_error_text,
        argMinIf(SpanId, end_ns, tool_failed) AS first_tool_error_span,
        argMinIf(if(result_error, substring(result, 1, 500), error_text), end_ns, tool_failed) AS first_tool_error_text,
        argMinIf(tool, end_ns, tool_failed) AS first_tool_error_tool,
        argMinIf(start_ns, end_ns, tool_failed) AS first_tool_error_start,
        minIf(end_ns, tool_failed) AS first_tool_error_end,
        argMinIf(SpanId, end_ns, llm_failed) AS first_llm_error_span,
        argMinIf(error_text, end_ns, llm_failed) AS first_llm_error_text,
        minIf(end_ns, llm_failed) AS first_llm_error_end,
        argMinIf(SpanId, end_ns, timed_out) AS first_timeout_span,
        argMinIf(error_text, end_ns, timed_out) AS first_timeout_text,
        argMinIf(SpanId, start_ns, bad_args) AS bad_args_span,
        argMinIf(link_span, start_ns, bad_args) AS bad_args_link,
        minIf(start_ns, bad_args) AS bad_args_start,
        argMinIf(tool, start_ns, bad_args) AS bad_args_tool,
        argMinIf(substring(args, 1, 300), start_ns, bad_args) AS bad_args_text,
        argMaxIf(SpanId, end_ns, is_llm) AS last_llm_span,
        argMaxIf(llm_failed, end_ns, is_llm) AS last_llm_failed,
        maxIf(end_ns, is_llm) AS last_llm_end,
        argMaxIf(llm_output, end_ns, is_llm) AS last_llm_output,
        argMaxIf(finish_reasons, end_ns, is_llm) AS last_finish_reasons,
        argMaxIf(flat_text, end_ns, is_llm) AS last_flat_text,
        argMaxIf(flat_tool, end_ns, is_llm) AS last_flat_tool,
        argMaxIf(flat_args, end_ns, is_llm) AS last_flat_args,
        argMaxIf(tool, end_ns, is_tool) AS last_tool,
        argMaxIf(args, end_ns, is_tool) AS last_tool_args,
        maxIf(end_ns, is_tool) AS last_tool_end,
        argMaxIf(SpanId, dur, is_llm OR is_tool) AS slowest_step,
        arraySort(groupArrayIf((start_ns, SpanId), is_llm)) AS llm_steps,
        arraySort(groupArrayIf((start_ns, SpanId, tool, {_CALL_KEY}, tool_failed), is_tool)) AS tool_steps,
        groupArray(if(ParentSpanId = '', 0, cityHash64(ParentSpanId))) AS parents,
        groupArray(cityHash64(SpanId)) AS span_ids"""
"""The per-trace aggregates over the span columns of :func:`span_columns` (the inner query of the features)."""

FEEDBACK_PER_TRACE = f"""    SELECT
        TraceId,
        argMaxIf(Label, UpdatedAt, Kind = 'outcome') AS outcome_label,
        argMaxIf(Score, UpdatedAt, Kind = 'outcome') AS outcome_score,
        countIf(Kind = 'outcome') AS has_outcome,
        minIf(Score, Kind = 'score') AS min_score,
        countIf(Kind = 'score') AS scores,
        countIf(Kind = 'label' AND Name != 'flag_review'
                AND lower(Label) IN ('bad', 'thumbs_down', 'negative', 'incorrect')) AS bad_labels,
        argMinIf(SpanId, UpdatedAt, Kind = 'label' AND Name != 'flag_review'
                 AND lower(Label) IN ('bad', 'thumbs_down', 'negative', 'incorrect')) AS bad_label_span,
        countIf(Kind = 'correction') AS corrections,
        argMinIf(SpanId, UpdatedAt, Kind = 'correction') AS correction_span
    FROM {FEEDBACK_TABLE} FINAL
    WHERE IsDeleted = 0 AND NOT startsWith(Author, 'judge:')
    GROUP BY TraceId"""
"""Per trace: its outcome, scores, negative labels and corrections (the feedback side of the features). A judge
model's verdicts (author ``judge:<model>``) are kept apart: they never label a run for the detectors, the
calibration or the scorer."""


def _trace_features() -> str:
    """The feature columns computed from the aggregates, one per detector input."""
    return f"""
    TraceId AS trace_id, spans, llm_calls, tool_calls, errors, tool_errors, result_errors, llm_errors, timeouts,
    bad_args_calls, tokens, duration_s, root_span, root_name, root_error, root_error_text, task_id, agent_name,
    conversation_id, root_input, first_flat_user,
    substring(genai_user_turns(first_llm_messages)[1], 1, 2000) AS first_llm_user,
    multiIf(first_llm_user != '', first_llm_user, first_flat_user != '', first_flat_user, root_input) AS first_user,
    service, version, start_s,
    first_error_span, first_error_text,
    first_tool_error_span, first_tool_error_text, first_tool_error_tool, first_tool_error_end,
    first_llm_error_span, first_llm_error_text, first_llm_error_end,
    first_timeout_span, first_timeout_text,
    if(bad_args_link != '', bad_args_link, arrayLast(x -> x.1 <= bad_args_start, llm_steps).2) AS bad_args_decision,
    bad_args_span, bad_args_tool, bad_args_text,
    last_llm_span, last_finish_reasons, slowest_step,
    tool_errors > 0 AND arrayExists(x -> x.3 = first_tool_error_tool AND NOT x.5 AND x.1 > first_tool_error_start,
                                    tool_steps) AS tool_recovered,
    llm_errors > 0 AND last_llm_end > first_llm_error_end AND NOT last_llm_failed AS llm_recovered,
    substring(root_output, 1, 4000) AS root_output, substring(agent_output, 1, 4000) AS agent_output,
    substring(last_llm_output, 1, 8000) AS last_llm_output, substring(last_flat_text, 1, 4000) AS last_flat_text,
    last_flat_tool, substring(last_flat_args, 1, 2000) AS last_flat_args, last_tool, substring(last_tool_args, 1, 2000)
        AS last_tool_args, last_tool_end > last_llm_end AS ends_with_tool,
    arrayStringConcat(arrayMap(x -> x.3, tool_steps), ' ') AS tool_sequence,
    if(empty(occurrences), 0, arrayMax(occurrences)) AS max_repeats,
    arrayFirst((x, o) -> o = 2 AND countEqual(call_keys, x.4) >= {{loop_min:UInt32}}, tool_steps, occurrences).2
        AS loop_span,
    arrayFirst((x, o) -> o = 2 AND countEqual(call_keys, x.4) >= {{loop_min:UInt32}}, tool_steps, occurrences).3
        AS loop_tool,
    arrayCount((x, o) -> o >= 2 AND has(failed_keys, x.4), tool_steps, occurrences) AS retries,
    arrayFirst((x, o) -> o = 1 AND x.5 AND countEqual(call_keys, x.4) >= 2, tool_steps, occurrences).2 AS retry_span,
    {_depth_expr()} AS depth"""
