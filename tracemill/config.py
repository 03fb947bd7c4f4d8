"""Every setting of tracemill, declared once: each ``TRACEMILL_*`` variable with its meaning, type and default.

This is the one module that names the variables. The SDK (:mod:`tracemill.tracer.config`), the server
(:mod:`tracemill.collector.server.settings`), the CLI (typer options take ``envvar`` and ``default`` from here)
and the library read them through these declarations; ``docs/configuration.md`` is checked against them in
both directions (``tests/test_docs.py``). Precedence everywhere: explicit argument > environment > default.
A bad value: the SDK warns and uses the default, the server and the CLI refuse to start; either way the
message names the variable and the value (:func:`parse`).

To add a setting, add one :class:`Setting` line below (and its row in ``docs/configuration.md``).

The module imports only the standard library and :mod:`tracemill.errors`, so the tracer may use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tracemill.errors import ConfigError

__all__ = ["SETTINGS", "Setting", "environment", "parse", "read", "setting"]

Kind = Literal["str", "int", "float", "bool", "names", "json_strings"]
"""How a value is written: text, a whole number, a number, true/false, comma-separated names, a JSON array of
strings."""

Reader = Literal["tracer", "server", "cli", "library"]
"""Who reads a setting: the SDK in an agent process, ``tracemill serve``, the command line, the Python API."""


@dataclass(frozen=True)
class Setting:
    """One ``TRACEMILL_*`` variable: the name, the field it fills, how it is written, its default and meaning."""

    name: str
    field: str
    kind: Kind
    default: Any
    doc: str
    readers: tuple[Reader, ...]
    choices: tuple[str, ...] = ()

    def raw(self, env: Mapping[str, str] | None = None) -> str | None:
        """The variable's text in ``env`` (``os.environ`` by default), stripped; None when unset or blank."""
        text = environment(env).get(self.name, "").strip()
        return text or None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

# -- the SDK, in the agent's process -----------------------------------------------------------------------
SERVICE_NAME = Setting(
    "TRACEMILL_SERVICE_NAME", "service_name", "str", "tracemill-agent",
    "service.name of the spans (falls back to OTEL_SERVICE_NAME); default 'tracemill-agent'", ("tracer",))
ENDPOINT = Setting(
    "TRACEMILL_ENDPOINT", "endpoint", "str", None,
    "OTLP/HTTP endpoint to export to, e.g. http://127.0.0.1:4318 (a tracemill server or any OTel backend); "
    "default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, else the local tracemill server "
    "on TRACEMILL_PORT when it answers and the outbox in TRACEMILL_DATA_DIR when not", ("tracer",))
CAPTURE_CONTENT = Setting(
    "TRACEMILL_CAPTURE_CONTENT", "capture_content", "bool", True,
    "record inputs, outputs, messages and tool arguments (true/false); default true", ("tracer",))
MAX_PAYLOAD_BYTES = Setting(
    "TRACEMILL_MAX_PAYLOAD_BYTES", "max_payload_bytes", "int", 65536,
    "byte budget of one captured payload; larger ones are truncated as valid JSON; default 65536", ("tracer",))
SAMPLE_RATIO = Setting(
    "TRACEMILL_SAMPLE_RATIO", "sample_ratio", "float", 1.0,
    "fraction of new traces to record, 0..1 (children follow their parent); default 1.0", ("tracer",))
DISABLED = Setting(
    "TRACEMILL_DISABLED", "disabled", "bool", False,
    "turn tracing off entirely (true/false); default false", ("tracer",))
REDACT_KEYS = Setting(
    "TRACEMILL_REDACT_KEYS", "redact_keys", "names", (),
    "comma-separated extra key names whose values are masked, exact or with * globs such as *_pin (names "
    "containing password, secret, token, api_key, access_key, or starting with auth, are always masked)",
    ("tracer",))
REDACT_PATTERNS = Setting(
    "TRACEMILL_REDACT_PATTERNS", "redact_patterns", "json_strings", (),
    "a JSON array of regular expressions whose matches in captured text, exception messages, stack traces, "
    "status messages and attribute values are masked (added to the built-in token formats)", ("tracer",))
OPENINFERENCE = Setting(
    "TRACEMILL_OPENINFERENCE", "openinference", "bool", False,
    "the SDK also writes OpenInference attributes (openinference.span.kind, input.value, llm.*, tool.*) on the "
    "spans it records, for Arize Phoenix and other OpenInference backends (true/false); default false", ("tracer",))
PROPAGATE_THREADS = Setting(
    "TRACEMILL_PROPAGATE_THREADS", "propagate_threads", "bool", True,
    "carry the current span into threading.Thread and ThreadPoolExecutor workers; default true", ("tracer",))

# -- where things are: read by every part ------------------------------------------------------------------
DATA_DIR = Setting(
    "TRACEMILL_DATA_DIR", "data_dir", "str", None,
    "directory for the embedded store, the spool and the outbox; default: the user data dir (platformdirs)",
    ("tracer", "server", "cli", "library"))
STORE = Setting(
    "TRACEMILL_STORE", "store", "str", None,
    "DSN of the store (chdb:///path or http(s)://user:pass@host:8123/db): the one `tracemill serve` owns and "
    "commands open when no server answers; in an agent process, spans are written to it directly (before any "
    "endpoint); default: the embedded store '<data dir>/store'", ("tracer", "server", "cli", "library"))
PORT = Setting(
    "TRACEMILL_PORT", "port", "int", 4318,
    "port of `tracemill serve` (OTLP/HTTP and the API on one port), where commands and zero-config tracing "
    "look for it; default 4318, the OTLP/HTTP port", ("tracer", "server", "cli", "library"))
SERVER = Setting(
    "TRACEMILL_SERVER", "server", "str", None,
    "URL where commands and tracemill.feedback look for a running server; default http://127.0.0.1:$TRACEMILL_PORT",
    ("cli", "library"))
TOKEN = Setting(
    "TRACEMILL_TOKEN", "token", "str", None,
    "bearer token the server requires on every request (the admin token beside TRACEMILL_REVIEWERS), and that "
    "the CLI and tracemill.feedback send (a reviewer's token makes them that reviewer); default: none",
    ("server", "cli", "library"))
AUTHOR = Setting(
    "TRACEMILL_AUTHOR", "author", "str", None,
    "who gives feedback from the CLI and tracemill.feedback; default $USER", ("cli", "library"))

# -- tracemill serve -----------------------------------------------------------------------------------------
HOST = Setting(
    "TRACEMILL_HOST", "host", "str", "127.0.0.1",
    "address `tracemill serve` binds to; default 127.0.0.1. Any other address requires TRACEMILL_TOKEN", ("server",))
SPOOL = Setting(
    "TRACEMILL_SPOOL", "spool_dir", "str", None,
    "directory of the server's durable spool; default: next to an embedded store ('<store>.spool'), else under "
    "the user data dir, one per store", ("server",))
SPOOL_MAX_BYTES = Setting(
    "TRACEMILL_SPOOL_MAX_BYTES", "spool_max_bytes", "int", 1 << 30,
    "bytes of received spans the spool holds while the store is slow or down, before the receiver answers "
    "429/503; default 1073741824 (1 GiB)", ("server",))
SPOOL_SYNC = Setting(
    "TRACEMILL_SPOOL_SYNC", "spool_sync", "str", "full",
    "'full': an acknowledged batch survives power loss; 'normal': it survives a crash of the server process "
    "only, and commits are faster; default full", ("server",), choices=("full", "normal"))
MAX_REQUEST_BYTES = Setting(
    "TRACEMILL_MAX_REQUEST_BYTES", "max_request_bytes", "int", 20 << 20,
    "largest OTLP request body accepted, compressed and decompressed (larger gets 413); default 20971520 "
    "(20 MiB)", ("server",))
BATCH_SPANS = Setting(
    "TRACEMILL_BATCH_SPANS", "batch_spans", "int", 20_000,
    "spans per insert into the store: the writer waits for this many or for the flush interval; default 20000",
    ("server",))
BATCH_BYTES = Setting(
    "TRACEMILL_BATCH_BYTES", "batch_bytes", "int", 16 << 20,
    "bytes of spooled payloads per insert (a larger request goes alone); converting an insert takes several "
    "times its bytes, so this bounds the writer's memory; default 16777216 (16 MiB)", ("server",))
MAX_INFLIGHT_BYTES = Setting(
    "TRACEMILL_MAX_INFLIGHT_BYTES", "max_inflight_bytes", "int", None,
    "request bytes the receiver reads and decodes at once; a request that finds no room within 5s gets 429; "
    "default twice TRACEMILL_MAX_REQUEST_BYTES", ("server",))
FLUSH_INTERVAL_S = Setting(
    "TRACEMILL_FLUSH_INTERVAL_S", "flush_interval_s", "float", 1.0,
    "longest time in seconds a received span waits in the spool before it is inserted; default 1.0", ("server",))
WRITER_PROCESSES = Setting(
    "TRACEMILL_WRITER_PROCESSES", "writer_processes", "int", None,
    "worker processes that convert and encode spans for the writer (0: in the writer thread); default: one per "
    "CPU core beyond the first, at most 4, none on 1-2 cores", ("server",))
FORWARD = Setting(
    "TRACEMILL_FORWARD", "forward", "str", None,
    "also send every received batch to this OTLP/HTTP endpoint (best effort), e.g. http://localhost:4320 for "
    "Jaeger; default: none", ("server",))
FORWARD_OPENINFERENCE = Setting(
    "TRACEMILL_FORWARD_OPENINFERENCE", "openinference", "bool", False,
    "with --forward, the server also writes OpenInference attributes (openinference.span.kind, input.value, "
    "llm.*, tool.*) on the spans it forwards, for Arize Phoenix (true/false); the stored spans are unchanged; "
    "default false",
    ("server",))
CLUSTER = Setting(
    "TRACEMILL_CLUSTER", "cluster", "str", None,
    "ClickHouse cluster name: the schema is created ON CLUSTER with Replicated engines; default: none",
    ("server",))
ALLOWED_HOSTS = Setting(
    "TRACEMILL_ALLOWED_HOSTS", "allowed_hosts", "names", (),
    "comma-separated host names the server also answers to (Host header), e.g. tracemill.internal or "
    "*.example.com; '*' turns the check off; default: only its bound address (and localhost, 127.0.0.1, [::1] "
    "on a loopback or wildcard bind)", ("server",))
ROLLOUT_CHECK_S = Setting(
    "TRACEMILL_ROLLOUT_CHECK_S", "rollout_check_s", "float", 60.0,
    "seconds between the server's looks at running rollouts (halting a significantly worse candidate); "
    "0 turns them off; default 60", ("server",))
REVIEWERS = Setting(
    "TRACEMILL_REVIEWERS", "reviewers", "str", None,
    "file of reviewer tokens, one line 'author token' each, read again when it changes (rotation); a "
    "reviewer's token makes a request that reviewer, and TRACEMILL_TOKEN stays the admin token; default: none",
    ("server",))
SESSION_TTL_S = Setting(
    "TRACEMILL_SESSION_TTL_S", "session_ttl_s", "float", 8 * 3600.0,
    "seconds a review UI sign-in lasts before the token is asked again; default 28800 (8 hours)", ("server",))
LOG_LEVEL = Setting(
    "TRACEMILL_LOG_LEVEL", "log_level", "str", "info",
    "log level of `tracemill serve`: debug, info, warning or error; default info", ("server",),
    choices=("debug", "info", "warning", "error"))

# -- the judge model ------------------------------------------------------------------------------------------
JUDGE_MODEL = Setting(
    "TRACEMILL_JUDGE_MODEL", "judge_model", "str", "gpt-4o-mini",
    "model name `tracemill judge` asks an OpenAI-compatible server (OPENAI_BASE_URL) for; default gpt-4o-mini",
    ("cli",))

# -- the demo ------------------------------------------------------------------------------------------------
DEMO_MODEL = Setting(
    "TRACEMILL_DEMO_MODEL", "demo_model", "str", "gpt-4o-mini",
    "model name the demo agent asks an OpenAI-compatible server (OPENAI_BASE_URL) for; default gpt-4o-mini", ("cli",))

SETTINGS: tuple[Setting, ...] = tuple(v for v in dict(globals()).values() if isinstance(v, Setting))
"""Every setting, in declaration order."""


def environment(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """``env``, or the process environment when None: every reader takes its environment as an argument."""
    return os.environ if env is None else env


def setting(name: str) -> Setting:
    """The declaration of the variable ``name`` (``TRACEMILL_…``)."""
    for declared in SETTINGS:
        if declared.name == name:
            return declared
    raise KeyError(f"no setting named {name!r} is declared in tracemill.config")


def parse(declared: Setting, raw: str) -> Any:
    """The value ``raw`` stands for; :class:`ConfigError` naming the variable and the value when it cannot be."""
    name, text = declared.name, raw.strip()
    try:
        if declared.kind == "int":
            return int(text)
        if declared.kind == "float":
            return float(text)
    except ValueError:
        kind = "a whole number" if declared.kind == "int" else "a number"
        example = declared.default if declared.default is not None else 1
        raise ConfigError(f"{name}={raw!r} is not {kind}; unset it or give e.g. {name}={example}") from None
    if declared.kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE or not text:
            return False
        raise ConfigError(f"{name}={raw!r} is not true or false; unset it or give e.g. {name}=1")
    if declared.kind == "names":
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if declared.kind == "json_strings":
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{name}={raw!r} is not a JSON array of strings; give e.g. {name}='[\"secret-\\\\d+\"]'")
        return tuple(values)
    if declared.choices and text.lower() not in declared.choices:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(declared.choices)}")
    return text.lower() if declared.choices else text


def read(declared: Setting, env: Mapping[str, str] | None = None, explicit: Any = None) -> Any:
    """Explicit argument > environment > default, for one setting; a bad environment value raises
    :class:`ConfigError` (what the server and the CLI do; the SDK warns instead, see :mod:`tracemill.tracer.config`)."""
    if explicit is not None:
        return explicit
    raw = declared.raw(env)
    return declared.default if raw is None else parse(declared, raw)
