"""The tracing runtime: one tracer provider, its export pipeline and the resolved settings.

``init`` may run any number of times (each replaces the previous pipeline); the first
decorated call runs it with environment settings when the program never did. When the
program already installed its own SDK ``TracerProvider``, tracemill adds its export pipeline
to that provider instead of replacing it.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from tracemill.tracer.config import TracerSettings, local_server_url, settings_from_env, value_problem
from tracemill.tracer.logs import log_once, logger
from tracemill.tracer.pipeline import SwitchableProcessor, SwitchableSampler
from tracemill.tracer.redaction import Redactor
from tracemill.tracer.threads import propagate_context_to_threads, stop_propagating_context_to_threads

SCOPE_NAME = "tracemill"
SCOPE_VERSION = "0.1.0"

StoreExporterFactory = Callable[[str], SpanExporter]
_store_exporter_factory: StoreExporterFactory | None = None


def set_store_exporter_factory(factory: StoreExporterFactory) -> None:
    """Register how ``store=DSN`` becomes an exporter (the façade wires the collector's exporter,
    so the tracer never imports the collector and runs with only the core installed)."""
    global _store_exporter_factory
    _store_exporter_factory = factory


class Runtime:
    """Process-wide tracing state. Hot-path readers look at ``tracer`` and ``disabled`` only."""

    def __init__(self) -> None:
        self.settings = TracerSettings()
        self.redactor = Redactor()
        self.tracer: trace.Tracer | None = None
        self.disabled = False
        self.provider: TracerProvider | None = None  # the provider tracemill's spans come from
        self.owned_provider: TracerProvider | None = None  # the one tracemill created, at most one
        self.pipeline = SwitchableProcessor()
        self.sampler = SwitchableSampler(ParentBased(TraceIdRatioBased(1.0)))
        self._attached: list[TracerProvider] = []  # providers the pipeline was added to
        self.stopped = False  # shutdown() ran: no zero-config restart until init()
        self.lock = threading.RLock()

    @property
    def owns_provider(self) -> bool:
        return self.provider is not None and self.provider is self.owned_provider

    def provider_for(self, settings: TracerSettings) -> TracerProvider:
        """The global SDK provider (the program's or tracemill's own), created and set if there is none."""
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
        else:
            if self.owned_provider is None:
                self.owned_provider = TracerProvider(
                    resource=Resource.create({"service.name": settings.service_name}), sampler=self.sampler
                )
            provider = self.owned_provider
            trace.set_tracer_provider(provider)
        if provider is self.owned_provider:
            service = provider.resource.attributes.get("service.name")
            if service != settings.service_name:
                log_once(f"service_name:{settings.service_name}",
                         "tracemill: service_name %r is ignored; this process traces as %r, set by its first "
                         "init() (an OpenTelemetry provider's resource cannot change)",
                         settings.service_name, service, exc_info=False)
        if not any(p is provider for p in self._attached):
            provider.add_span_processor(self.pipeline)
            self._attached.append(provider)
        return provider


RUNTIME = Runtime()
_atexit_registered = False


def _traces_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def _default_exporter(settings: TracerSettings) -> SpanExporter:
    if settings.store:
        if _store_exporter_factory is None:
            raise RuntimeError("no store exporter is registered; import tracemill to wire it")
        return _store_exporter_factory(settings.store)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if settings.endpoint:
        return OTLPSpanExporter(endpoint=_traces_url(settings.endpoint), headers=dict(settings.headers))
    # No endpoint given: the OTel exporter reads OTEL_EXPORTER_OTLP_* itself, else the local collector.
    import os

    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return OTLPSpanExporter(headers=dict(settings.headers) or None)
    # Nothing configured: the local server if it answers, else the outbox it and the CLI ingest.
    from tracemill.paths import outbox_dir
    from tracemill.tracer.local_export import LocalExporter

    return LocalExporter(_traces_url(local_server_url()), outbox_dir(), headers=settings.headers)


def _stop_pipeline(rt: Runtime) -> None:
    """Flush and shut down the current export pipeline; the provider stays (it may be global)."""
    previous = rt.pipeline.swap(None)
    rt.tracer = None
    if previous is not None:
        try:
            previous.shutdown()
        except Exception:
            logger.warning("tracemill: a span processor failed to shut down", exc_info=True)


def configure(
    settings: TracerSettings,
    *,
    exporter: SpanExporter | None = None,
    processor: SpanProcessor | None = None,
) -> TracerSettings:
    """Install ``settings`` with their export pipeline, replacing what an earlier call installed.

    ``processor`` is used as given (e.g. a ``SimpleSpanProcessor`` in tests); ``exporter`` is
    wrapped in a ``BatchSpanProcessor``; otherwise the exporter follows ``store``/``endpoint``.
    """
    global _atexit_registered
    rt = RUNTIME
    with rt.lock:
        _stop_pipeline(rt)
        rt.stopped = False
        rt.settings = settings
        rt.redactor = Redactor(
            extra_keys=settings.redact_keys, patterns=settings.redact_patterns, callback=settings.redact
        )
        rt.pipeline.redactor = rt.redactor
        rt.pipeline.openinference = settings.openinference
        if settings.propagate_threads:
            propagate_context_to_threads()
        else:
            stop_propagating_context_to_threads()
        rt.disabled = settings.disabled
        if settings.disabled:
            return settings
        if processor is None:
            processor = BatchSpanProcessor(exporter if exporter is not None else _default_exporter(settings))
        rt.provider = rt.provider_for(settings)
        rt.sampler.inner = ParentBased(TraceIdRatioBased(settings.sample_ratio))
        rt.pipeline.swap(processor)
        rt.tracer = rt.provider.get_tracer(SCOPE_NAME, SCOPE_VERSION)
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        return settings


def init(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    store: str | None = None,
    headers: Mapping[str, str] | None = None,
    capture_content: bool | None = None,
    max_payload_bytes: int | None = None,
    sample_ratio: float | None = None,
    disabled: bool | None = None,
    redact_keys: tuple[str, ...] | list[str] | None = None,
    redact_patterns: tuple[str, ...] | list[str] | None = None,
    redact: Callable[[str, Any], Any] | None = None,
    propagate_threads: bool | None = None,
    openinference: bool | None = None,
    exporter: SpanExporter | None = None,
    processor: SpanProcessor | None = None,
    env: Mapping[str, str] | None = None,
) -> TracerSettings:
    """Configure tracing. Arguments override ``TRACEMILL_*`` variables, which override defaults.

    ``endpoint`` exports OTLP/HTTP (to ``tracemill serve`` or any OTel backend); ``store``
    writes straight into a ClickHouse store from this process. ``openinference=True`` also writes
    OpenInference attributes (for Arize Phoenix). Bad explicit arguments raise
    ``ValueError``; bad environment values are warned about and replaced by defaults.
    """
    from tracemill.errors import ConfigError

    base = settings_from_env(env)
    explicit: dict[str, Any] = {
        "service_name": service_name, "endpoint": endpoint, "store": store, "headers": headers,
        "capture_content": capture_content, "max_payload_bytes": max_payload_bytes,
        "sample_ratio": sample_ratio, "disabled": disabled,
        "redact_keys": tuple(redact_keys) if redact_keys is not None else None,
        "redact_patterns": tuple(redact_patterns) if redact_patterns is not None else None,
        "redact": redact, "propagate_threads": propagate_threads, "openinference": openinference,
    }
    for name in ("max_payload_bytes", "sample_ratio", "endpoint"):  # the rules the environment is checked by
        problem = None if explicit[name] is None else value_problem(name, explicit[name])
        if problem:
            raise ConfigError(f"'{name}' {problem} (got {explicit[name]!r})")
    if endpoint is not None and store is not None:
        raise ConfigError("pass either 'endpoint' (export OTLP) or 'store' (write to a store), not both")
    settings = base.replace(**{k: v for k, v in explicit.items() if v is not None})
    if endpoint is not None:
        settings = settings.replace(store=None)
    try:
        Redactor(extra_keys=settings.redact_keys, patterns=settings.redact_patterns)
    except ValueError as exc:
        raise ConfigError(f"'redact_patterns' has an invalid regular expression: {exc}") from exc
    return configure(settings, exporter=exporter, processor=processor)


def ensure_initialized() -> trace.Tracer | None:
    """The zero-config path: initialize from the environment on first use. Never raises."""
    rt = RUNTIME
    with rt.lock:
        if rt.tracer is None and not rt.disabled and not rt.stopped:
            try:
                configure(settings_from_env())
            except Exception:
                logger.warning("tracemill: tracing could not start; the program runs untraced", exc_info=True)
                rt.disabled = True
        return rt.tracer


def force_flush(timeout_millis: int = 30000) -> bool:
    """Export every finished span now."""
    return RUNTIME.pipeline.force_flush(timeout_millis)


def shutdown() -> None:
    """Flush and stop the export pipeline (also runs at interpreter exit).

    The tracer provider stays installed, so other OpenTelemetry instrumentation keeps working
    and a later ``init()`` starts a new pipeline on it.
    """
    rt = RUNTIME
    with rt.lock:
        _stop_pipeline(rt)
        rt.stopped = True
