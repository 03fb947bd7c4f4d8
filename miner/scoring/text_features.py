"""What the conversation says, for the learned scorer: when no error is raised, failed and successful runs
differ in what the user asked, which state-changing calls were made with which arguments, and how it ended.

Per trace: the user's turns (from the last LLM call's input messages: GenAI JSON, or the flattened
``llm.input_messages.*`` of OpenInference and ``gen_ai.prompt.*`` of OpenLLMetry), the tool calls in order with
their arguments and results, which tools write (change state) and which only read, the last actions and the
final answer, and peer statistics among runs of the same task (the share of peers that made the same
state-changing calls with the same arguments).

Read only when the supervised scorer trains, over the traces being scored, in one query that does the work
inside ClickHouse: it parses the messages, tokenizes the turns, arguments and results, and hashes each token
to a column of the token matrix, so Python receives a few numbers and an array of column indices per trace
instead of every conversation's text. The few tokens of the final action (known only after
:mod:`tracemill.miner.final_action`) are hashed in Python into the same columns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import TYPE_CHECKING

import numpy as np

from tracemill.collector.store.query import attribute
from tracemill.collector.store.schema import SPANS_TABLE
from tracemill.miner.features import Frame
from tracemill.miner.grouping import IDENTIFIER_PATTERN, MIN_IDENTIFIER
from tracemill.miner.peers import numbered
from tracemill.miner.sql import FLATTENED_INPUTS, GENAI_USER_TURNS, _q, span_columns

if TYPE_CHECKING:
    import pyarrow as pa
    from scipy.sparse import csr_matrix

    from tracemill.collector.store.store import Store

__all__ = ["READ_TOOL_PATTERN", "TEXT_NUMERIC", "TOKEN_COLUMNS", "ConversationFeatures", "conversation_features",
           "conversation_sql", "hashed_counts", "peer_keys"]  # fmt: skip

READ_TOOL_PATTERN = (
    r"(?i)^(get|find|search|list|lookup|look_up|read|fetch|check|query|calculate|compute|think|view|show|describe"
    r"|retrieve|count|validate|verify|browse|open|load|summari[sz]e)(_|$|[A-Z])"
)
"""A tool whose name says it only reads; any other tool is taken to change state (a write)."""

TEXT_NUMERIC = ("write_calls", "read_calls", "write_tools", "peer_agreement", "peers", "ends_with_tool_call",
                "final_handoff", "final_gives_up", "user_turns", "final_chars")  # fmt: skip
"""Numeric features this module adds to the scorer's trace features."""

TOKEN_COLUMNS = 2**14
"""Columns of the hashed token matrix."""

VALUE_PATTERN = r"[A-Za-z_#]*\d[\w#.-]*|[A-Za-z]{2,}"
"""A token: a value with a digit (an id, an amount, a date) or a word of two letters or more."""

_TOKENS_PER_TEXT, _TOKENS_PER_RESULT, _CHARS = 60, 20, 400


@dataclass
class ConversationFeatures:
    """Per trace of a frame: the :data:`TEXT_NUMERIC` values and the hashed token counts (one row each)."""

    numbers: np.ndarray
    tokens: csr_matrix


def _tokens_sql(text: str, prefix: str, limit: int) -> str:
    """The prefixed, lower-cased tokens of ``text`` (at most ``limit``), as a ClickHouse array expression. A token
    holds ASCII characters only, so lower-casing the text's ASCII letters once (``lower``) gives the tokens that
    lower-casing each one gives, in one pass instead of one per token (5% of the conversation query)."""
    return (f"arrayMap(t -> concat({prefix}, t), "
            f"arraySlice(extractAll(lower({text}), {_q(VALUE_PATTERN)}), 1, {limit}))")  # fmt: skip


_ATTRIBUTES = "mapFromArrays(SpanAttributes.keys, SpanAttributes.values)"
"""A span's attributes as a map, built from the key and value arrays the query reads anyway: naming the map column
itself reads every attribute a second time (0.1 s of the conversations of 1M spans)."""


def _flattened_messages(name: str) -> str:
    """The role and content attributes of an LLM span's flattened input messages, as a map. Read only from a span
    without GenAI JSON messages, which the user's turns are read from first (as the trace features' first user
    input is)."""
    prefix, infix = FLATTENED_INPUTS[name]
    return (f"if(is_llm AND genai_messages = '', mapFilter((k, v) -> startsWith(k, {_q(prefix)}) "
            f"AND (endsWith(k, {_q(infix + 'role')}) OR endsWith(k, {_q(infix + 'content')})), {_ATTRIBUTES}), "
            f"map()) AS {name}_messages")


def _flattened_user_turns(name: str) -> str:
    prefix, infix = FLATTENED_INPUTS[name]
    key = f"concat({_q(prefix)}, toString(i), {_q(infix)})"
    return (f"arrayFilter(x -> x != '', arrayMap(i -> if({name}[concat({key}, 'role')] = 'user', "
            f"{name}[concat({key}, 'content')], ''), range(toUInt32(length({name})))))")  # fmt: skip


def _user_turns_sql() -> str:
    """The user's turns in the last LLM call's input: GenAI JSON messages, else the flattened ones."""
    return (f"multiIf(notEmpty(genai_user_turns(genai)), genai_user_turns(genai), notEmpty(oi), "
            f"{_flattened_user_turns('oi')}, {_flattened_user_turns('prompts')})")


def conversation_sql(where: str) -> str:
    """Per trace of the spans selected by ``where``: the token columns, the counts of user turns, write and read
    calls and written tools, the write signature (read by :func:`conversation_features`), and the identifiers in
    the user's turns (read by :func:`~tracemill.miner.grouping.group_keys`)."""
    arguments = _tokens_sql("c.3", "concat(c.1, 'a:')", _TOKENS_PER_TEXT)
    results = _tokens_sql("c.4", "concat(c.1, 'r:')", _TOKENS_PER_RESULT)
    turns = _tokens_sql("u", "'u:'", _TOKENS_PER_TEXT)
    last = "arrayMap((c, k) -> concat('last', toString(length(last_calls) - k + 1), ':', c.2), last_calls, " \
           "arrayEnumerate(last_calls))"
    tokens = (f"arrayConcat(arrayFlatten(arrayMap(u -> {turns}, user)), arrayFlatten(arrayMap(c -> "
              f"arrayConcat([concat(c.1, ':', c.2)], {arguments}, {results}), calls)), {last}, "
              "[concat('writes:', toString(write_calls))])")  # fmt: skip
    writes = "arrayFilter(c -> c.1 = 'w', calls)"
    return f"""
WITH {GENAI_USER_TURNS}
SELECT
    TraceId,
    arrayMap(t -> toUInt16(cityHash64(t) % {TOKEN_COLUMNS}), {tokens}) AS token_columns,
    length(user) AS user_turns,
    length({writes}) AS write_calls,
    length(calls) - write_calls AS read_calls,
    length(arrayDistinct(arrayMap(c -> c.2, {writes}))) AS write_tools,
    arrayStringConcat(arraySort(arrayMap(c -> concat(c.2, '(', c.3, ')'), {writes})), '|') AS write_signature,
    arrayDistinct(arrayFilter(t -> length(t) >= {MIN_IDENTIFIER}, arrayFlatten(arrayMap(
        u -> extractAll(lowerUTF8(u), {_q(IDENTIFIER_PATTERN)}), user)))) AS user_ids
FROM (
    SELECT
        TraceId,
        arrayMap(x -> (if(x.2 != '' AND NOT match(x.2, {_q(READ_TOOL_PATTERN)}), 'w', 'r'), x.2, x.3, x.4),
                 arraySort(groupArrayIf((start_ns, tool, substring(args, 1, {_CHARS}),
                                         substring(result, 1, {_CHARS})), is_tool))) AS calls,
        argMaxIf(genai_messages, ts, genai_messages != '') AS genai,
        argMaxIf(oi_messages, ts, notEmpty(oi_messages)) AS oi,
        argMaxIf(prompts_messages, ts, notEmpty(prompts_messages)) AS prompts,
        {_user_turns_sql()} AS user,
        arraySlice(calls, -2) AS last_calls
    FROM (
        SELECT {span_columns('0')},
            if(is_llm, {attribute('gen_ai.input.messages')}, '') AS genai_messages,
            {_flattened_messages('oi')},
            {_flattened_messages('prompts')}
        FROM {SPANS_TABLE} WHERE TraceId != '' AND {where}
    )
    GROUP BY TraceId
)
ORDER BY TraceId
SETTINGS short_circuit_function_evaluation = 'force_enable'"""


def conversation_features(store: Store | None, frame: Frame, peer_keys: Sequence[str]) -> ConversationFeatures:
    """The :data:`TEXT_NUMERIC` values and hashed token counts of each trace of ``frame`` (read from ``store``;
    without one, only what the frame holds)."""
    from scipy import sparse

    n = len(frame)
    counts = np.zeros((n, 4))  # user turns, write calls, read calls, write tools
    signatures: list[str] = [""] * n
    from_store = sparse.csr_matrix((n, TOKEN_COLUMNS))
    read = store is not None and n and frame.cache is not None
    if not read:
        table = None
    elif frame.conversations is not None:  # started in the background when the run began
        table = frame.conversations.result()
    else:
        table = frame.cache.read_conversations(frame.where, frame.params)
    if table is not None and table.num_rows:
        traces = table.column("TraceId").to_pylist()
        # The same condition selected the frame's traces, in the same order; a trace written in between is left out.
        rows = np.arange(n) if traces == frame["trace_id"] else _rows_of(frame, traces)
        kept = rows >= 0
        numbers = [table.column(name).to_numpy() for name in ("user_turns", "write_calls", "read_calls", "write_tools")]
        counts[rows[kept]] = np.column_stack(numbers)[kept]
        for i, value in zip(rows[kept], compress(table.column("write_signature").to_pylist(), kept), strict=True):
            signatures[i] = value
        from_store = _token_matrix(table.column("token_columns").combine_chunks(), rows, n)
    agreement, others = _peer_agreement(peer_keys, signatures)
    kinds, tools = frame["final_kind"], frame["final_tool"]
    ending = [f"end:{kind} endtool:{tool} agree:{a:.1f}" for kind, tool, a in zip(kinds, tools, agreement, strict=True)]
    answers = [text or "" for text in frame["final_output"]]
    turns, writes, reads, write_tools = counts.T
    numbers_out = np.column_stack([
        writes, reads, write_tools, agreement, others, np.asarray([kind == "tool_call" for kind in kinds], float),
        np.asarray(frame["final_handoff"], float), np.asarray(frame["final_gives_up"], float), turns,
        np.fromiter(map(len, answers), dtype=float, count=n),
    ]) if n else np.zeros((0, len(TEXT_NUMERIC)))  # fmt: skip
    hashed = (hashed_counts(ending, columns=TOKEN_COLUMNS, token_pattern=r"[^ ]+", lowercase=False)
              + hashed_counts(answers, columns=TOKEN_COLUMNS, token_pattern=VALUE_PATTERN))
    return ConversationFeatures(numbers_out, (from_store + hashed).tocsr())


def _token_matrix(tokens: pa.ListArray, rows: np.ndarray, n: int) -> csr_matrix:
    """The token columns of each trace (a list per table row) as counts in frame rows ``rows`` (-1: left out).
    When the table's rows are the frame's, the lists become the matrix's rows directly, without a COO round trip."""
    from scipy import sparse

    columns = tokens.flatten().to_numpy(zero_copy_only=False).astype(np.int32)
    lengths = tokens.value_lengths().to_numpy(zero_copy_only=False)
    if rows.size == n and np.array_equal(rows, np.arange(n)):
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        matrix = sparse.csr_matrix((np.ones(columns.size), columns, indptr), shape=(n, TOKEN_COLUMNS))
        matrix.sum_duplicates()
        return matrix
    row_of_token = np.repeat(rows, lengths)
    keep = row_of_token >= 0
    return sparse.csr_matrix((np.ones(int(keep.sum())), (row_of_token[keep], columns[keep])), shape=(n, TOKEN_COLUMNS))


def _rows_of(frame: Frame, traces: Sequence[str]) -> np.ndarray:
    """The frame row of each trace (-1 for a trace the frame lacks)."""
    index = {trace: i for i, trace in enumerate(frame["trace_id"])}
    return np.fromiter((index.get(t, -1) for t in traces), dtype=np.int64, count=len(traces))


def _peer_agreement(peer_keys: Sequence[str], signatures: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per trace, the share of its peers that made the same state-changing calls (0.5 without peers), and how
    many peers it has. Counted a column at a time: each trace's group and (group, signature) pair is numbered
    once, and the counts are NumPy's."""
    groups, pairs = numbered(peer_keys)[0], numbered(list(zip(peer_keys, signatures, strict=True)))[0]
    group_size, pair_size = np.bincount(groups)[groups], np.bincount(pairs)[pairs]
    has_peers = np.fromiter(map(bool, peer_keys), dtype=bool, count=len(groups)) & (group_size > 1)
    others = np.where(has_peers, group_size - 1, 0).astype(float)
    agreement = np.where(has_peers, (pair_size - 1) / np.maximum(others, 1.0), 0.5)
    return agreement, others


def hashed_counts(texts: Sequence[str], *, columns: int, token_pattern: str = r"(?u)\b\w\w+\b",
                  lowercase: bool = True, ngrams: tuple[int, int] = (1, 1)) -> csr_matrix:
    """Raw token counts of ``texts`` hashed onto ``columns`` columns. Each distinct text is hashed once: endings,
    tool sequences, error texts and many final answers repeat from run to run."""
    from scipy import sparse
    from sklearn.feature_extraction.text import HashingVectorizer

    if not texts:
        return sparse.csr_matrix((0, columns))
    rows, distinct = numbered(texts)
    vectorizer = HashingVectorizer(n_features=columns, token_pattern=token_pattern, lowercase=lowercase,
                                   ngram_range=ngrams, alternate_sign=False, norm=None)
    return vectorizer.transform(distinct)[rows]


def peer_keys(frame: Frame, groups: Sequence[str] | None = None) -> list[str]:
    """Runs of the same task for peer statistics: the task id, else the trials the run's grouping found
    (``groups``, :func:`~tracemill.miner.grouping.group_keys`: a conversation id that several runs share, or the
    identifiers their users gave), else the exact first user input (lower case). A conversation id that names one
    run names no task, and the masked first input names a phrasing that many tasks share, so neither makes peers."""
    sizes = Counter(groups) if groups is not None else Counter()
    keys = []
    for i, (task, first_user) in enumerate(zip(frame["task_id"], frame["first_user"], strict=True)):
        group = groups[i] if groups is not None else ""
        if task:
            keys.append("task:" + task)
        elif group.startswith(("conversation:", "user:")) and sizes[group] > 1:
            keys.append(group)
        else:
            text = " ".join(first_user.lower().split())
            keys.append("input:" + text if text else "")
    return keys
