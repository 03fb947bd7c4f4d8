"""Tracing settings: every ``TRACEMILL_*`` variable the SDK reads, declared once.

Precedence is explicit argument > environment > default. The SDK never refuses to start
an agent over a bad setting: it warns, naming the variable and the value, and uses the default.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("tracemill")

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
"""Where ``tracemill serve`` listens; also the OTLP/HTTP default of every OTel SDK."""


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: its name, the settings field it fills, and what it means (with its default)."""

    name: str
    field: str
    doc: str


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("TRACEMILL_SERVICE_NAME", "service_name",
           "service.name of the spans (falls back to OTEL_SERVICE_NAME); default 'tracemill-agent'"),
    EnvVar("TRACEMILL_ENDPOINT", "endpoint",
           "OTLP/HTTP endpoint to export to, e.g. http://127.0.0.1:4318 (a tracemill server or any OTel "
           "backend); default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, else "
           f"{DEFAULT_ENDPOINT}"),
    EnvVar("TRACEMILL_STORE", "store",
           "DSN of a store to write to directly from this process (chdb:///path or http(s)://host:8123/db); "
           "takes precedence over the endpoint"),
    EnvVar("TRACEMILL_CAPTURE_CONTENT", "capture_content",
           "record inputs, outputs, messages and tool arguments (true/false); default true"),
    EnvVar("TRACEMILL_MAX_PAYLOAD_BYTES", "max_payload_bytes",
           "byte budget of one captured payload; larger ones are truncated as valid JSON; default 65536"),
    EnvVar("TRACEMILL_SAMPLE_RATIO", "sample_ratio",
           "fraction of new traces to record, 0..1 (children follow their parent); default 1.0"),
    EnvVar("TRACEMILL_DISABLED", "disabled", "turn tracing off entirely (true/false); default false"),
    EnvVar("TRACEMILL_REDACT_KEYS", "redact_keys",
           "comma-separated extra key names whose values are masked, exact or with * globs such as *_pin "
           "(names containing password, secret, token, api_key, access_key, or starting with auth, are always "
           "masked)"),
    EnvVar("TRACEMILL_REDACT_PATTERNS", "redact_patterns",
           "a JSON array of regular expressions whose matches in captured text, exception messages, stack "
           "traces, status messages and attribute values are masked (added to the built-in token formats)"),
    EnvVar("TRACEMILL_OPENINFERENCE", "openinference",
           "also write OpenInference attributes (openinference.span.kind, input.value, llm.*, tool.*) for Arize "
           "Phoenix and other OpenInference backends (true/false); default false"),
    EnvVar("TRACEMILL_PROPAGATE_THREADS", "propagate_threads",
           "carry the current span into threading.Thread and ThreadPoolExecutor workers; default true"),
)


@dataclass(frozen=True)
class TracerSettings:
    """Resolved settings of the tracing SDK. Field docs live in :data:`ENV_VARS`."""

    service_name: str = "tracemill-agent"
    endpoint: str | None = None
    store: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    capture_content: bool = True
    max_payload_bytes: int = 65536
    sample_ratio: float = 1.0
    disabled: bool = False
    redact_keys: tuple[str, ...] = ()
    redact_patterns: tuple[str, ...] = ()
    redact: Callable[[str, Any], Any] | None = None
    propagate_threads: bool = True
    openinference: bool = False

    def replace(self, **changes: Any) -> TracerSettings:
        return dataclasses.replace(self, **changes)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(var: EnvVar, raw: str, default: Any) -> Any:
    """Parse one variable; on a bad value warn (naming key and value) and keep the default."""
    try:
        if isinstance(default, bool):
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected true or false")
        if isinstance(default, int):
            value = int(raw)
            if value <= 0:
                raise ValueError("expected a positive integer")
            return value
        if isinstance(default, float):
            ratio = float(raw)
            if not 0.0 <= ratio <= 1.0:
                raise ValueError("expected a number between 0 and 1")
            return ratio
        if var.field == "redact_keys":
            return tuple(k.strip() for k in raw.split(",") if k.strip())
        if var.field == "redact_patterns":
            patterns = json.loads(raw)
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ValueError("expected a JSON array of strings")
            return tuple(patterns)
        return raw
    except ValueError as exc:
        logger.warning("tracemill: ignoring %s=%r (%s); using the default %r", var.name, raw, exc, default)
        return default


def settings_from_env(env: Mapping[str, str] | None = None) -> TracerSettings:
    """Build settings from the environment (``os.environ`` unless a mapping is given)."""
    env = os.environ if env is None else env
    defaults = TracerSettings()
    values: dict[str, Any] = {}
    for var in ENV_VARS:
        raw = env.get(var.name)
        if raw is None:
            continue
        default = defaults.disabled if var.field == "disabled" else getattr(defaults, var.field)
        values[var.field] = _parse(var, raw, default)
    if "service_name" not in values and env.get("OTEL_SERVICE_NAME"):
        values["service_name"] = env["OTEL_SERVICE_NAME"]
    return dataclasses.replace(defaults, **values)
