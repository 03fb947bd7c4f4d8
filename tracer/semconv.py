"""Attribute names: the OTel GenAI conventions, and tracemill's own names where none exists.

Declared once here so that the tracer, the integrations and the miner spell them the same way.
"""

from __future__ import annotations

from typing import Final

# OTel GenAI semantic conventions (latest experimental).
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_TOP_P: Final = "gen_ai.request.top_p"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_SEED: Final = "gen_ai.request.seed"
REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
AGENT_ID: Final = "gen_ai.agent.id"
AGENT_NAME: Final = "gen_ai.agent.name"
AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
AGENT_VERSION: Final = "gen_ai.agent.version"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_TYPE: Final = "gen_ai.tool.type"
TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
ERROR_TYPE: Final = "error.type"
USER_ID: Final = "user.id"

# gen_ai.operation.name values.
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
OP_RETRIEVAL: Final = "retrieval"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_CREATE_AGENT: Final = "create_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"

# tracemill's own names, for what the conventions do not cover.
STEP_KIND: Final = "tracemill.step.kind"
INPUT: Final = "tracemill.input"
OUTPUT: Final = "tracemill.output"
OUTPUT_ITEMS: Final = "tracemill.output.items"
TASK_ID: Final = "tracemill.task.id"
RUN_NAME: Final = "tracemill.run.name"
METADATA_PREFIX: Final = "tracemill.metadata."
DECISION: Final = "tracemill.decision"
"""True on a span that records a choice made in code (whatever its ``tracemill.step.kind``)."""
DECISION_OPTIONS: Final = "tracemill.decision.options"
DECISION_CHOICE: Final = "tracemill.decision.choice"
DECISION_REASON: Final = "tracemill.decision.reason"
CLOSED_EARLY: Final = "tracemill.closed_early"
TOOL_PARAMETERS: Final = "tracemill.tool.parameters"
"""On ``execute_tool`` spans: the tool's parameter schema (JSON Schema as JSON text), when known."""

# More GenAI request names and general OTel names, recorded by the integrations.
REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
DATA_SOURCE_ID: Final = "gen_ai.data_source.id"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"

# tracemill's own names for what the integrations observe.
TIME_TO_FIRST_CHUNK: Final = "tracemill.response.time_to_first_chunk_s"
FRAMEWORK: Final = "tracemill.framework"
LLM_DELEGATED: Final = "tracemill.llm.delegated"
"""Set on a framework's LLM span whose request a provider integration traced as the call of record."""
