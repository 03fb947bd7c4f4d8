from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from tracemill.collector.ingest.exporter import StoreSpanExporter
from tracemill.collector.store.store import Store
from tracemill.errors import ConfigError


def _provider(exporter: StoreSpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "notebook"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_spans_from_a_tracer_provider_land_in_the_store(store):
    exporter = StoreSpanExporter(store)
    provider = _provider(exporter)
    tracer = provider.get_tracer("nb")
    with tracer.start_as_current_span("invoke_agent helper") as root:
        root.set_attribute("gen_ai.agent.name", "helper")
        with tracer.start_as_current_span("execute_tool lookup", kind=trace.SpanKind.INTERNAL) as tool:
            tool.set_attribute("gen_ai.tool.name", "lookup")
    provider.shutdown()
    rows = store.query(
        "SELECT SpanName, ServiceName, ScopeName, AgentName, ToolName, ParentSpanId = '' "
        "FROM otel_traces ORDER BY SpanName"
    ).result_rows
    assert rows == [
        ("execute_tool lookup", "notebook", "nb", "", "lookup", False),
        ("invoke_agent helper", "notebook", "nb", "helper", "", True),
    ]
    assert not store.closed  # a Store handed in stays the caller's


def test_exporter_opened_from_dsn_writes_and_closes_on_shutdown(chdb_dsn, database_name, sdk_spans, tmp_path):
    exporter = StoreSpanExporter(chdb_dsn, database=database_name)
    assert exporter.export(sdk_spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    # chDB opens another directory only when no store is open in this process: proof of the close.
    Store.open(f"chdb://{tmp_path}/other").close()
    with Store.open(chdb_dsn, database=database_name) as store:
        assert store.query("SELECT count() FROM otel_traces").result_rows == [(2,)]
        store.command(f"DROP DATABASE `{database_name}`")


def test_export_after_shutdown_returns_failure(store, sdk_spans):
    exporter = StoreSpanExporter(store)
    exporter.shutdown()
    assert exporter.export(sdk_spans) is SpanExportResult.FAILURE
    assert store.query("SELECT count() FROM otel_traces").result_rows == [(0,)]


def test_failing_store_returns_failure_and_logs_once(store, sdk_spans, caplog):
    exporter = StoreSpanExporter(store)
    store.command("DROP TABLE otel_traces")
    with caplog.at_level(logging.DEBUG, logger="tracemill.collector.ingest.exporter"):
        assert exporter.export(sdk_spans) is SpanExportResult.FAILURE
        assert exporter.export(sdk_spans) is SpanExportResult.FAILURE
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "tracemill store export failed; 2 spans dropped" in errors[0].getMessage()


def test_export_recovers_after_the_store_comes_back(store, sdk_spans, caplog):
    exporter = StoreSpanExporter(store)
    store.command("RENAME TABLE otel_traces TO otel_traces_away")
    assert exporter.export(sdk_spans) is SpanExportResult.FAILURE
    store.command("RENAME TABLE otel_traces_away TO otel_traces")
    with caplog.at_level(logging.INFO, logger="tracemill.collector.ingest.exporter"):
        assert exporter.export(sdk_spans) is SpanExportResult.SUCCESS
    assert "recovered" in caplog.text


def test_locked_or_unopenable_store_is_a_failed_export_not_an_exception(tmp_path, store, sdk_spans):
    # A second chDB directory cannot open while `store` holds this process's engine.
    exporter = StoreSpanExporter(f"chdb://{tmp_path}/elsewhere")
    assert exporter.export(sdk_spans) is SpanExportResult.FAILURE
    exporter.shutdown()


def test_empty_export_succeeds_without_touching_the_store(tmp_path):
    assert StoreSpanExporter(f"chdb://{tmp_path}/never-opened").export([]) is SpanExportResult.SUCCESS
    assert not (tmp_path / "never-opened").exists()


def test_force_flush_reports_success(store):
    assert StoreSpanExporter(store).force_flush() is True


def test_bad_dsn_raises_config_error_at_construction():
    with pytest.raises(ConfigError, match="chdb:///absolute/path"):
        StoreSpanExporter("sqlite:///traces.db")


def test_database_with_a_store_raises_value_error(store):
    with pytest.raises(ValueError, match="database applies to a DSN"):
        StoreSpanExporter(store, database="other")
