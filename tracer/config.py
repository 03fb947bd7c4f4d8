"""Tracing settings: the SDK's part of :mod:`tracemill.config`, where every variable is declared once.

Precedence is explicit argument > environment > default. The SDK never refuses to start
an agent over a bad setting: it warns, naming the variable and the value, and uses the default.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracemill import config
from tracemill.config import Setting
from tracemill.errors import ConfigError

logger = logging.getLogger("tracemill")

DEFAULT_PORT: int = config.PORT.default
"""Port of ``tracemill serve`` unless the port setting says otherwise: the OTLP/HTTP port."""

DEFAULT_ENDPOINT = f"http://127.0.0.1:{DEFAULT_PORT}"
"""Where ``tracemill serve`` listens by default; also the OTLP/HTTP default of every OTel SDK."""


def local_server_port(env: Mapping[str, str] | None = None) -> int:
    """The port setting when it is a port number, else :data:`DEFAULT_PORT`."""
    raw = config.PORT.raw(env) or ""
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else DEFAULT_PORT


def local_server_url(env: Mapping[str, str] | None = None) -> str:
    """``http://127.0.0.1:<port setting>`` (default 4318): where a local ``tracemill serve`` answers."""
    return f"http://127.0.0.1:{local_server_port(env)}"


@dataclass(frozen=True)
class TracerSettings:
    """Resolved settings of the tracing SDK; each field's meaning and default: :mod:`tracemill.config`."""

    service_name: str = config.SERVICE_NAME.default
    endpoint: str | None = config.ENDPOINT.default
    store: str | None = config.STORE.default
    headers: Mapping[str, str] = field(default_factory=dict)
    capture_content: bool = config.CAPTURE_CONTENT.default
    max_payload_bytes: int = config.MAX_PAYLOAD_BYTES.default
    sample_ratio: float = config.SAMPLE_RATIO.default
    disabled: bool = config.DISABLED.default
    redact_keys: tuple[str, ...] = config.REDACT_KEYS.default
    redact_patterns: tuple[str, ...] = config.REDACT_PATTERNS.default
    redact: Callable[[str, Any], Any] | None = None
    propagate_threads: bool = config.PROPAGATE_THREADS.default
    openinference: bool = config.OPENINFERENCE.default

    def replace(self, **changes: Any) -> TracerSettings:
        return dataclasses.replace(self, **changes)


ENV_VARS: tuple[Setting, ...] = tuple(
    s for s in config.SETTINGS if "tracer" in s.readers and s.field in TracerSettings.__dataclass_fields__
)
"""The settings the SDK reads into :class:`TracerSettings`."""


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


def _parse(var: Setting, raw: str, default: Any) -> Any:
    """Parse one variable; on a bad value warn (naming key and value) and keep the default."""
    try:
        value = config.parse(var, raw)
        problem = value_problem(var.field, value)
        if problem:
            raise ValueError(f"{var.field} {problem}")
        return value
    except (ConfigError, ValueError) as exc:
        logger.warning("tracemill: ignoring %s=%r (%s); using the default %r", var.name, raw, exc, default)
        return default


def settings_from_env(env: Mapping[str, str] | None = None) -> TracerSettings:
    """Build settings from the environment (``os.environ`` unless a mapping is given)."""
    env = config.environment(env)
    defaults = TracerSettings()
    values: dict[str, Any] = {}
    for var in ENV_VARS:
        raw = env.get(var.name)
        if raw is None:
            continue
        values[var.field] = _parse(var, raw, getattr(defaults, var.field))
    if "service_name" not in values and env.get("OTEL_SERVICE_NAME"):
        values["service_name"] = env["OTEL_SERVICE_NAME"]
    return dataclasses.replace(defaults, **values)
