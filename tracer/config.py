"""Tracing settings: every ``TRACEMILL_*`` variable the SDK reads, declared once.

Precedence is explicit argument > environment > default. The SDK never refuses to start
an agent over a bad setting: it warns, naming the variable and the value, and uses the default.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("tracemill")

DEFAULT_PORT = 4318
"""Port of ``tracemill serve`` unless ``TRACEMILL_PORT`` says otherwise: the OTLP/HTTP port."""

PORT_ENV = "TRACEMILL_PORT"
"""Port of the local ``tracemill serve``: the server listens there, the CLI and zero-config tracing look there."""

DEFAULT_ENDPOINT = f"http://127.0.0.1:{DEFAULT_PORT}"
"""Where ``tracemill serve`` listens by default; also the OTLP/HTTP default of every OTel SDK."""


def local_server_port(env: Mapping[str, str] | None = None) -> int:
    """``TRACEMILL_PORT`` when it is a port number, else :data:`DEFAULT_PORT`."""
    env = os.environ if env is None else env
    raw = env.get(PORT_ENV, "").strip()
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else DEFAULT_PORT


def local_server_url(env: Mapping[str, str] | None = None) -> str:
    """``http://127.0.0.1:$TRACEMILL_PORT`` (default 4318): where a local ``tracemill serve`` answers."""
    return f"http://127.0.0.1:{local_server_port(env)}"


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
           "backend); default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, else the local "
           "tracemill server on TRACEMILL_PORT when it answers and the outbox in TRACEMILL_DATA_DIR when not"),
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


MIN_PAYLOAD_BYTES = 64
"""Smallest payload budget: room for a truncation marker in valid JSON."""


def value_problem(field: str, value: Any) -> str | None:
    """Why ``value`` cannot be the setting ``field``, or None when it can.

    One rule per setting for both sources: ``init()`` raises with it, a ``TRACEMILL_*`` variable
    is warned about with it and replaced by the default.
    """
    if field == "max_payload_bytes":
        if isinstance(value, bool) or not isinstance(value, int) or value < MIN_PAYLOAD_BYTES:
            return f"must be an integer >= {MIN_PAYLOAD_BYTES}"
    elif field == "sample_ratio":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            return "must be between 0 and 1"
    elif field == "endpoint":
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            return f"must be an http(s) URL such as {DEFAULT_ENDPOINT}"
    elif field == "redact_patterns":
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                return f"has an invalid regular expression {pattern!r}: {exc}"
    return None


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
        value: Any
        if isinstance(default, int):
            value = int(raw)
        elif isinstance(default, float):
            value = float(raw)
        elif var.field == "redact_keys":
            value = tuple(k.strip() for k in raw.split(",") if k.strip())
        elif var.field == "redact_patterns":
            patterns = json.loads(raw)
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ValueError("expected a JSON array of strings")
            value = tuple(patterns)
        else:
            value = raw
        problem = value_problem(var.field, value)
        if problem:
            raise ValueError(f"{var.field} {problem}")
        return value
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
