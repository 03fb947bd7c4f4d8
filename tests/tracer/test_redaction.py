"""Secrets never leave the process: exception events, status messages, attributes and payloads,
checked on the spans the real tracer hands to the SDK's in-memory exporter."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import tracemill
from tracemill.tracer.redaction import MASK, Redactor
from tracemill.tracer.runtime import RUNTIME

OPENAI_KEY = "sk-proj-Abc123def456ghi789jkl012"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITHUB_PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SLACK_TOKEN = "xoxb-1234567890-abcdefghijkl"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
BASIC = "Basic YWRtaW46aHVudGVyMg=="  # admin:hunter2


def everything_exported(span) -> str:
    """Every text of a finished span a backend would receive, in one string."""
    parts = [span.name, span.status.description or ""]
    parts += [f"{k}={v}" for k, v in span.attributes.items()]
    for event in span.events:
        parts += [f"{k}={v}" for k, v in event.attributes.items()]
    return "\n".join(parts)


def test_api_key_in_an_exception_is_masked_in_message_stack_trace_and_status(spans):
    @tracemill.tool
    def call_api():
        api_key = OPENAI_KEY
        raise PermissionError(f"key {api_key} rejected; retry with Bearer abcdefgh12345678")

    with pytest.raises(PermissionError, match="sk-proj"):  # the program still sees its own exception
        call_api()
    span = spans.named("execute_tool call_api")
    event = next(e for e in span.events if e.name == "exception")
    assert event.attributes["exception.message"] == f"key {MASK} rejected; retry with {MASK}"
    assert "PermissionError" in event.attributes["exception.stacktrace"]
    assert MASK in event.attributes["exception.stacktrace"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == f"PermissionError: key {MASK} rejected; retry with {MASK}"
    assert "sk-proj" not in everything_exported(span) and "abcdefgh1234" not in everything_exported(span)


def test_exceptions_recorded_by_other_instrumentation_are_masked_too(spans):
    other = RUNTIME.provider.get_tracer("someone-elses-instrumentation")
    with pytest.raises(ConnectionError), other.start_as_current_span("db.query"):
        raise ConnectionError("could not connect to postgres://admin:hunter2@db.internal:5432/app")

    span = spans.named("db.query")
    assert "hunter2" not in everything_exported(span)
    assert f"postgres://admin:{MASK}@db.internal:5432/app" in span.status.description


def test_a_status_message_given_by_hand_is_masked(spans):
    with tracemill.tool_call("deploy") as call:
        call.record_error(f"push refused for token {GITHUB_TOKEN}")

    span = spans.named("execute_tool deploy")
    assert span.status.description == f"push refused for token {MASK}"


@pytest.mark.parametrize("key", ["db_password", "AWS_SECRET_ACCESS_KEY", "aws_access_key_id", "x-goog-api-key",
                                 "auth", "Authorization", "session_token", "apiKey", "client_secret"])
def test_values_under_sensitive_key_names_are_masked_in_arguments_attributes_and_metadata(spans, key):
    @tracemill.tool
    def connect(settings):
        tracemill.set_attributes(**{key: "s3cr3t-value"})
        return {key: "s3cr3t-value", "host": "db"}

    with tracemill.run("job", metadata={key: "s3cr3t-value"}):
        connect({key: "s3cr3t-value", "nested": [{key: 42}]})

    tool_span = spans.named("execute_tool connect")
    assert json.loads(tool_span.attributes["gen_ai.tool.call.arguments"]) == {
        "settings": {key: MASK, "nested": [{key: MASK}]}
    }
    assert json.loads(tool_span.attributes["gen_ai.tool.call.result"]) == {key: MASK, "host": "db"}
    assert tool_span.attributes[key] == MASK
    assert spans.named("invoke_workflow job").attributes[f"tracemill.metadata.{key}"] == MASK
    for span in spans.finished:
        assert "s3cr3t-value" not in everything_exported(span)


@pytest.mark.parametrize("key", ["author", "max_tokens", "gen_ai.usage.input_tokens", "llm.token_count.total",
                                 "tokenizer", "monkey", "keyword", "passage"])
def test_similar_but_harmless_key_names_are_kept(spans, key):
    @tracemill.step
    def configure(options):
        return "ok"

    configure({key: "kept"})
    assert json.loads(spans.named("configure").attributes["tracemill.input"]) == {"options": {key: "kept"}}


@pytest.mark.parametrize(("text", "expected"), [
    (f"token {GITHUB_TOKEN} here", f"token {MASK} here"),
    (f"fine-grained {GITHUB_PAT}", f"fine-grained {MASK}"),
    (f"key id {AWS_KEY_ID}.", f"key id {MASK}."),
    (f"slack {SLACK_TOKEN}", f"slack {MASK}"),
    (f"jwt {JWT}", f"jwt {MASK}"),
    (f"Authorization: {BASIC}", f"Authorization: {MASK}"),
    ("authorization: bearer abcdefgh.12345678", f"authorization: {MASK}"),
    (f"openai {OPENAI_KEY}", f"openai {MASK}"),
    ("dsn postgres://admin:hunter2@db.example:5432/app", f"dsn postgres://admin:{MASK}@db.example:5432/app"),
    ("login with password: hunter2 please", f"login with password: {MASK} please"),
    ("DB_PASSWORD='hunter2' API_KEY=abc123", f"DB_PASSWORD='{MASK}' API_KEY={MASK}"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", f"AWS_SECRET_ACCESS_KEY={MASK}"),
])
def test_token_formats_in_message_text_are_masked(spans, text, expected):
    with tracemill.llm_call(provider="openai", model="m", input_messages=[{"role": "user", "content": text}]) as call:
        call.record_output(content=f"you said: {text}")

    span = spans.named("chat m")
    assert json.loads(span.attributes["gen_ai.input.messages"])[0]["parts"][0]["content"] == expected
    assert json.loads(span.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == f"you said: {expected}"


@pytest.mark.parametrize("text", [
    "Basic arithmetic is fun", "https://example.com/docs?page=2", "the password policy is strict",
    "max_tokens=100 and input_tokens: 3", "ask-abcdefghijklmnopqrstuvwxyz0", "see https://user@example.com/x",
])
def test_ordinary_text_that_resembles_a_secret_is_kept(spans, text):
    @tracemill.step
    def echo(message):
        return message

    echo(text)
    assert json.loads(spans.named("echo").attributes["tracemill.output"]) == text


def test_user_keys_globs_and_patterns_from_init_apply_everywhere(spans):
    spans.reinit(redact_keys=["*_pin", "ssn"], redact_patterns=[r"ACME-\d{6}"])

    @tracemill.tool
    def pay(card_pin, ssn, note):
        raise ValueError(f"payment ACME-123456 declined for ssn={ssn}")

    with pytest.raises(ValueError):
        pay("1234", "078-05-1120", "ref ACME-654321")

    span = spans.named("execute_tool pay")
    assert json.loads(span.attributes["gen_ai.tool.call.arguments"]) == {
        "card_pin": MASK, "ssn": MASK, "note": f"ref {MASK}",
    }
    assert span.status.description == f"ValueError: payment {MASK} declined for ssn=078-05-1120"


def test_user_keys_and_patterns_from_the_environment_apply(spans):
    spans.exporter = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(spans.exporter), env={
        "TRACEMILL_REDACT_KEYS": "iban, *_pin", "TRACEMILL_REDACT_PATTERNS": '["ACME-\\\\d{6}"]',
    })

    @tracemill.step
    def transfer(iban, atm_pin, memo):
        tracemill.set_attributes(reference="ACME-000042")
        return "done"

    transfer("DE89370400440532013000", "9999", "invoice ACME-111111")
    attributes = spans.named("transfer").attributes
    assert json.loads(attributes["tracemill.input"]) == {"iban": MASK, "atm_pin": MASK, "memo": f"invoice {MASK}"}
    assert attributes["reference"] == MASK


def test_invalid_user_pattern_is_refused_naming_the_setting():
    with pytest.raises(tracemill.ConfigError, match="redact_patterns"):
        tracemill.init(redact_patterns=["(unclosed"], env={})


def test_masking_keeps_json_valid_and_leaves_clean_payloads_untouched():
    redactor = Redactor()
    clean = json.dumps({"query": "shoes", "max_tokens": 5, "author": "Ann"})
    assert redactor.redact_json(clean) == clean
    dirty = json.dumps({"log": f'said "{OPENAI_KEY}" and password=x', "x-goog-api-key": {"deep": 1}})
    assert json.loads(redactor.redact_json(dirty)) == {"log": f'said "{MASK}" and password={MASK}',
                                                       "x-goog-api-key": MASK}
