"""OpenInference attributes derived from the GenAI and tracemill attributes of a span.

Arize Phoenix (and other OpenInference backends) read ``openinference.span.kind``, ``input.value``,
``output.value``, ``llm.*`` and ``tool.*`` instead of the OTel GenAI conventions. With
``init(openinference=True)`` (or the ``openinference`` setting) the tracer adds them to every span it
exports, and ``tracemill serve --forward URL --openinference`` adds them to forwarded spans. They are
computed from the span's own (already redacted) attributes, so the two schemas always agree.
Names follow the OpenInference semantic conventions (``spec/semantic_conventions.md`` of
Arize-ai/openinference).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeGuard

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

from tracemill.tracer import semconv
from tracemill.tracer.openinference.openai_messages import to_openai_messages

SPAN_KIND: Final = "openinference.span.kind"
INPUT_VALUE: Final = "input.value"
INPUT_MIME_TYPE: Final = "input.mime_type"
OUTPUT_VALUE: Final = "output.value"
OUTPUT_MIME_TYPE: Final = "output.mime_type"
LLM_MODEL_NAME: Final = "llm.model_name"
LLM_PROVIDER: Final = "llm.provider"
LLM_INPUT_MESSAGES: Final = "llm.input_messages"
LLM_OUTPUT_MESSAGES: Final = "llm.output_messages"
LLM_INVOCATION_PARAMETERS: Final = "llm.invocation_parameters"
LLM_TOOLS: Final = "llm.tools"
LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
LLM_TOKEN_COUNT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_REASONING: Final = "llm.token_count.completion_details.reasoning"
MESSAGE_ROLE: Final = "message.role"
MESSAGE_CONTENT: Final = "message.content"
MESSAGE_TOOL_CALLS: Final = "message.tool_calls"
MESSAGE_TOOL_CALL_ID: Final = "message.tool_call_id"
TOOL_CALL_ID: Final = "tool_call.id"
TOOL_CALL_FUNCTION_NAME: Final = "tool_call.function.name"
TOOL_CALL_FUNCTION_ARGUMENTS: Final = "tool_call.function.arguments"
TOOL_NAME: Final = "tool.name"
TOOL_DESCRIPTION: Final = "tool.description"
TOOL_ID: Final = "tool.id"
TOOL_PARAMETERS: Final = "tool.parameters"
TOOL_JSON_SCHEMA: Final = "tool.json_schema"
SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"
METADATA: Final = "metadata"
PROJECT_NAME: Final = "openinference.project.name"
"""Resource attribute: the Phoenix project the spans land in."""

JSON_MIME: Final = "application/json"
TEXT_MIME: Final = "text/plain"

KIND_BY_OPERATION: Final[Mapping[str, str]] = {
    semconv.OP_CHAT: "LLM", semconv.OP_TEXT_COMPLETION: "LLM", "generate_content": "LLM",
    semconv.OP_EMBEDDINGS: "EMBEDDING", semconv.OP_RETRIEVAL: "RETRIEVER", semconv.OP_EXECUTE_TOOL: "TOOL",
    semconv.OP_INVOKE_AGENT: "AGENT", semconv.OP_CREATE_AGENT: "AGENT", semconv.OP_INVOKE_WORKFLOW: "CHAIN",
}
"""``gen_ai.operation.name`` → ``openinference.span.kind``; a ``@tracemill.step`` (or a framework chain) is CHAIN."""

_IO_SOURCES: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "LLM": ((semconv.INPUT_MESSAGES,), (semconv.OUTPUT_MESSAGES,)),  # when the messages do not parse
    "TOOL": ((semconv.TOOL_CALL_ARGUMENTS,), (semconv.TOOL_CALL_RESULT,)),
}
_DEFAULT_IO: Final = ((semconv.INPUT,), (semconv.OUTPUT, semconv.DECISION_CHOICE))


def span_kind(attributes: Mapping[str, Any]) -> str | None:
    """The OpenInference kind of a span, or None for a span that is not an agent's (an HTTP call…)."""
    operation = attributes.get(semconv.OPERATION_NAME)
    if isinstance(operation, str) and operation in KIND_BY_OPERATION:
        return KIND_BY_OPERATION[operation]
    if semconv.STEP_KIND in attributes or semconv.RUN_NAME in attributes:
        return "CHAIN"
    return None


def openinference_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenInference attributes for a span with ``attributes`` (empty when it is not an agent's span,
    or when it already carries OpenInference attributes of its own)."""
    if SPAN_KIND in attributes:
        return {}
    kind = span_kind(attributes)
    if kind is None:
        return {}
    out: dict[str, Any] = {SPAN_KIND: kind}
    inputs, outputs = _IO_SOURCES.get(kind, _DEFAULT_IO)
    _value(out, INPUT_VALUE, INPUT_MIME_TYPE, attributes, inputs)
    _value(out, OUTPUT_VALUE, OUTPUT_MIME_TYPE, attributes, outputs)
    if kind == "LLM":
        _llm_io(out, attributes)
    if kind in ("LLM", "EMBEDDING"):
        _llm(out, attributes)
    elif kind == "TOOL":
        _tool(out, attributes)
    for source, target in ((semconv.CONVERSATION_ID, SESSION_ID), (semconv.USER_ID, USER_ID)):
        if isinstance(attributes.get(source), str):
            out[target] = attributes[source]
    metadata = {k[len(semconv.METADATA_PREFIX):]: v for k, v in attributes.items()
                if k.startswith(semconv.METADATA_PREFIX)}
    if metadata:
        out[METADATA] = json.dumps(metadata, default=str)
    return out


def _value(out: dict[str, Any], key: str, mime_key: str, attributes: Mapping[str, Any], sources: Sequence[str]) -> None:
    """``input.value``/``output.value`` from the first captured payload present: a JSON string becomes
    plain text, anything else stays JSON."""
    for source in sources:
        raw = attributes.get(source)
        if isinstance(raw, str):
            decoded = _loads(raw) if raw.startswith('"') else None  # only a JSON string becomes plain text
            if isinstance(decoded, str):
                out[key], out[mime_key] = decoded, TEXT_MIME
            else:
                out[key], out[mime_key] = raw, JSON_MIME
            return


def _llm_io(out: dict[str, Any], attributes: Mapping[str, Any]) -> None:
    """An LLM span's input and output values as OpenInference instrumentations write them: the request
    with OpenAI-style ``messages``, and the response message (a list when there are several)."""
    system = _loads(attributes.get(semconv.SYSTEM_INSTRUCTIONS))
    inputs = _loads(attributes.get(semconv.INPUT_MESSAGES))
    if isinstance(inputs, list):
        request: dict[str, Any] = {}
        if isinstance(attributes.get(semconv.REQUEST_MODEL), str):
            request["model"] = attributes[semconv.REQUEST_MODEL]
        request["messages"] = to_openai_messages(inputs, system if isinstance(system, list) else None)
        out[INPUT_VALUE], out[INPUT_MIME_TYPE] = json.dumps(request), JSON_MIME
    outputs = _loads(attributes.get(semconv.OUTPUT_MESSAGES))
    if isinstance(outputs, list) and outputs:
        messages = to_openai_messages(outputs)
        out[OUTPUT_VALUE] = json.dumps(messages[0] if len(messages) == 1 else messages)
        out[OUTPUT_MIME_TYPE] = JSON_MIME


def _llm(out: dict[str, Any], attributes: Mapping[str, Any]) -> None:
    model = attributes.get(semconv.RESPONSE_MODEL) or attributes.get(semconv.REQUEST_MODEL)
    if isinstance(model, str):
        out[LLM_MODEL_NAME] = model
    if isinstance(attributes.get(semconv.PROVIDER_NAME), str):
        out[LLM_PROVIDER] = attributes[semconv.PROVIDER_NAME]
    system = _loads(attributes.get(semconv.SYSTEM_INSTRUCTIONS))
    inputs = _loads(attributes.get(semconv.INPUT_MESSAGES))
    messages = [{"role": "system", "parts": system}] if isinstance(system, list) and system else []
    if isinstance(inputs, list):
        messages.extend(inputs)
    _messages(out, LLM_INPUT_MESSAGES, messages)
    outputs = _loads(attributes.get(semconv.OUTPUT_MESSAGES))
    if isinstance(outputs, list):
        _messages(out, LLM_OUTPUT_MESSAGES, outputs)
    prompt, completion = attributes.get(semconv.USAGE_INPUT_TOKENS), attributes.get(semconv.USAGE_OUTPUT_TOKENS)
    for key, value in ((LLM_TOKEN_COUNT_PROMPT, prompt), (LLM_TOKEN_COUNT_COMPLETION, completion),
                       (LLM_TOKEN_COUNT_CACHE_READ, attributes.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS)),
                       (LLM_TOKEN_COUNT_REASONING, attributes.get(semconv.USAGE_REASONING_OUTPUT_TOKENS))):
        if _is_int(value):
            out[key] = value
    if _is_int(prompt) and _is_int(completion):
        out[LLM_TOKEN_COUNT_TOTAL] = prompt + completion
    parameters = {
        name: attributes[key] for name, key in (
            ("temperature", semconv.REQUEST_TEMPERATURE), ("top_p", semconv.REQUEST_TOP_P),
            ("max_tokens", semconv.REQUEST_MAX_TOKENS), ("seed", semconv.REQUEST_SEED),
            ("stop", semconv.REQUEST_STOP_SEQUENCES),
        ) if key in attributes
    }
    if parameters:
        out[LLM_INVOCATION_PARAMETERS] = json.dumps({k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in parameters.items()})
    tools = _loads(attributes.get(semconv.TOOL_DEFINITIONS))
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            out[f"{LLM_TOOLS}.{index}.{TOOL_JSON_SCHEMA}"] = json.dumps(tool)


def _tool(out: dict[str, Any], attributes: Mapping[str, Any]) -> None:
    for source, target in ((semconv.TOOL_NAME, TOOL_NAME), (semconv.TOOL_DESCRIPTION, TOOL_DESCRIPTION),
                           (semconv.TOOL_CALL_ID, TOOL_ID)):
        if isinstance(attributes.get(source), str):
            out[target] = attributes[source]
    schema = attributes.get(semconv.TOOL_PARAMETERS)
    if isinstance(schema, str):  # the parameter schema; the call's arguments are input.value
        out[TOOL_PARAMETERS] = schema


def _messages(out: dict[str, Any], prefix: str, messages: Sequence[Any]) -> None:
    """GenAI messages (role + parts) flattened as ``prefix.N.message.*``."""
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        base = f"{prefix}.{index}."
        if isinstance(message.get("role"), str):
            out[base + MESSAGE_ROLE] = message["role"]
        texts: list[str] = []
        calls = 0
        for part in message.get("parts") or ():
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "tool_call":
                call = f"{base}{MESSAGE_TOOL_CALLS}.{calls}."
                calls += 1
                if part.get("id") is not None:
                    out[call + TOOL_CALL_ID] = str(part["id"])
                if part.get("name") is not None:
                    out[call + TOOL_CALL_FUNCTION_NAME] = str(part["name"])
                arguments = part.get("arguments")
                out[call + TOOL_CALL_FUNCTION_ARGUMENTS] = (
                    arguments if isinstance(arguments, str) else json.dumps(arguments)
                )
            elif kind == "tool_call_response":
                if part.get("id") is not None:
                    out[base + MESSAGE_TOOL_CALL_ID] = str(part["id"])
                response = part.get("response")
                texts.append(response if isinstance(response, str) else json.dumps(response))
            elif isinstance(part.get("content"), str):
                texts.append(part["content"])
        if texts:
            out[base + MESSAGE_CONTENT] = "\n".join(texts)


def _loads(raw: Any) -> Any:
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


_project_resources: dict[int, tuple[Resource, Resource]] = {}


def _with_project(resource: Resource) -> Resource:
    """``resource`` naming its Phoenix project: the service name, unless it names one already
    (e.g. through ``OTEL_RESOURCE_ATTRIBUTES=openinference.project.name=…``)."""
    if PROJECT_NAME in resource.attributes:
        return resource
    cached = _project_resources.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    merged = resource.merge(Resource({PROJECT_NAME: str(resource.attributes.get("service.name", "default"))}))
    if len(_project_resources) < 64:  # a process has one or a few resources
        _project_resources[id(resource)] = (resource, merged)
    return merged


def with_openinference(span: ReadableSpan) -> ReadableSpan:
    """``span`` with its OpenInference attributes added and its resource naming a Phoenix project
    (itself when it is not an agent's span)."""
    attributes = dict(span.attributes or {})  # one copy: lookups on the SDK's mapping proxy cost ~10x more
    extra = openinference_attributes(attributes)
    if not extra:
        return span
    attributes.update(extra)
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=_with_project(span.resource),
        attributes=attributes, events=span.events, links=span.links, kind=span.kind,
        status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
