"""Settings: explicit arguments over environment over defaults; bad values are named."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracemill
from tracemill.tracer import runtime
from tracemill.tracer.config import ENV_VARS, TracerSettings, settings_from_env


def test_environment_values_are_parsed():
    settings = settings_from_env({
        "TRACEMILL_SERVICE_NAME": "svc", "TRACEMILL_CAPTURE_CONTENT": "false", "TRACEMILL_MAX_PAYLOAD_BYTES": "1024",
        "TRACEMILL_SAMPLE_RATIO": "0.25", "TRACEMILL_DISABLED": "yes", "TRACEMILL_REDACT_KEYS": "ssn, iban",
        "TRACEMILL_REDACT_PATTERNS": '["\\\\d+"]', "TRACEMILL_STORE": "chdb:///tmp/x",
    })
    assert settings == TracerSettings(
        service_name="svc", capture_content=False, max_payload_bytes=1024, sample_ratio=0.25, disabled=True,
        redact_keys=("ssn", "iban"), redact_patterns=("\\d+",), store="chdb:///tmp/x",
    )


def test_otel_service_name_is_the_fallback():
    assert settings_from_env({"OTEL_SERVICE_NAME": "from-otel"}).service_name == "from-otel"


@pytest.mark.parametrize(("name", "value"), [
    ("TRACEMILL_SAMPLE_RATIO", "2"), ("TRACEMILL_MAX_PAYLOAD_BYTES", "lots"), ("TRACEMILL_CAPTURE_CONTENT", "maybe"),
    ("TRACEMILL_REDACT_PATTERNS", "not json"), ("TRACEMILL_MAX_PAYLOAD_BYTES", "10"),
    ("TRACEMILL_ENDPOINT", "localhost:4318"), ("TRACEMILL_REDACT_PATTERNS", '["("]'),
])
def test_bad_environment_value_warns_with_key_and_value_and_keeps_default(name, value, caplog):
    with caplog.at_level(logging.WARNING, logger="tracemill"):
        settings = settings_from_env({name: value})
    assert settings == TracerSettings()
    assert name in caplog.text and repr(value) in caplog.text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sample_ratio": 1.5}, "'sample_ratio' must be between 0 and 1 (got 1.5)"),
    ({"max_payload_bytes": 10}, "'max_payload_bytes' must be an integer >= 64 (got 10)"),
    ({"endpoint": "localhost:4318"}, "'endpoint' must be an http(s) URL"),
    ({"endpoint": "http://x", "store": "chdb:///x"}, "either 'endpoint'"),
    ({"redact_patterns": ["("]}, "'redact_patterns' has an invalid regular expression"),
])
def test_bad_explicit_argument_raises_config_error_naming_it(kwargs, message):
    with pytest.raises(tracemill.ConfigError) as caught:
        tracemill.init(env={}, **kwargs)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("name", "field", "raw", "value"), [
    ("TRACEMILL_MAX_PAYLOAD_BYTES", "max_payload_bytes", "10", 10),
    ("TRACEMILL_SAMPLE_RATIO", "sample_ratio", "1.5", 1.5),
    ("TRACEMILL_ENDPOINT", "endpoint", "localhost:4318", "localhost:4318"),
])
def test_environment_and_init_refuse_the_same_values_with_the_same_rule(name, field, raw, value, caplog):
    with pytest.raises(tracemill.ConfigError) as caught:
        tracemill.init(env={}, **{field: value})
    rule = str(caught.value).split("' ", 1)[1].split(" (got")[0]  # e.g. "must be an integer >= 64"
    with caplog.at_level(logging.WARNING, logger="tracemill"):
        assert getattr(settings_from_env({name: raw}), field) == getattr(TracerSettings(), field)
    assert f"{field} {rule}" in caplog.text


def test_every_env_var_maps_to_a_settings_field():
    fields = set(TracerSettings.__dataclass_fields__)
    assert all(var.field in fields for var in ENV_VARS)
    assert len({var.name for var in ENV_VARS}) == len(ENV_VARS)


def test_explicit_argument_overrides_environment():
    exporter = InMemorySpanExporter()
    settings = tracemill.init(processor=SimpleSpanProcessor(exporter), service_name="explicit",
                              env={"TRACEMILL_SERVICE_NAME": "from-env", "TRACEMILL_SAMPLE_RATIO": "0.5"})
    try:
        assert settings.service_name == "explicit"
        assert settings.sample_ratio == 0.5
    finally:
        tracemill.shutdown()


def test_sample_ratio_zero_records_nothing_and_children_follow_parent():
    exporter = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(exporter), sample_ratio=0.0, env={})
    try:
        @tracemill.tool
        def inner():
            return 1

        @tracemill.agent
        def outer():
            return inner()

        assert outer() == 1
        assert exporter.get_finished_spans() == ()
    finally:
        tracemill.shutdown()


def test_programs_own_tracer_provider_is_added_to_not_replaced(monkeypatch):
    from opentelemetry import trace

    theirs = TracerProvider()
    their_exporter, our_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    theirs.add_span_processor(SimpleSpanProcessor(their_exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: theirs)
    tracemill.init(processor=SimpleSpanProcessor(our_exporter), env={})
    try:
        assert runtime.RUNTIME.provider is theirs
        assert runtime.RUNTIME.owns_provider is False

        @tracemill.step(name="shared")
        def shared():
            return 1

        shared()
        assert [s.name for s in their_exporter.get_finished_spans()] == ["shared"]
        assert [s.name for s in our_exporter.get_finished_spans()] == ["shared"]
    finally:
        tracemill.shutdown()
    # shutting tracemill down leaves the program's provider running
    with theirs.get_tracer("t").start_as_current_span("after"):
        pass
    assert [s.name for s in their_exporter.get_finished_spans()] == ["shared", "after"]


def test_init_again_keeps_the_global_provider_alive_for_other_instrumentation(spans):
    from opentelemetry import trace

    spans.reinit()
    tracemill.shutdown()
    spans.reinit(capture_content=False)

    @tracemill.tool
    def inner():
        return 1

    other = trace.get_tracer("some.other.instrumentation")
    with other.start_as_current_span("http request"):
        inner()
    http, tool = spans.named("http request"), spans.named("execute_tool inner")
    assert tool.parent.span_id == http.context.span_id
    assert tool.context.trace_id == http.context.trace_id


def test_earlier_pipelines_stop_receiving_spans_after_init_again():
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(first), service_name="tracemill-tests", env={})
    tracemill.init(processor=SimpleSpanProcessor(second), service_name="tracemill-tests", env={})
    try:
        @tracemill.step(name="once")
        def once():
            return 1

        once()
        assert [s.name for s in second.get_finished_spans()] == ["once"]
        assert first.get_finished_spans() == ()
    finally:
        tracemill.shutdown()


def test_a_different_service_name_on_init_again_is_warned_about(caplog):
    exporter = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(exporter), service_name="tracemill-tests", env={})
    with caplog.at_level(logging.WARNING, logger="tracemill"):
        tracemill.init(processor=SimpleSpanProcessor(exporter), service_name="renamed-later", env={})
    try:
        assert "service_name 'renamed-later' is ignored" in caplog.text
    finally:
        tracemill.shutdown()
