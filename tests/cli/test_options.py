"""The CLI's options read the variables the settings declare, with the settings' defaults."""

from __future__ import annotations

import typer.main

from tracemill.cli.app import app
from tracemill.client import default_server_url
from tracemill.collector.server.server import DEFAULT_LOG_LEVEL, ENV_VARS, ServerSettings
from tracemill.collector.store.dsn import STORE_ENV
from tracemill.feedback import AUTHOR_ENV
from tracemill.tracer.config import DEFAULT_ENDPOINT, DEFAULT_PORT


def _commands():
    return typer.main.get_command(app).commands  # type: ignore[attr-defined]  # a Typer app with commands is a click Group


def test_every_environment_variable_an_option_reads_is_declared():
    declared = {var.name for var in ENV_VARS} | {STORE_ENV, AUTHOR_ENV.name}
    read = {
        (name, param.name): param.envvar
        for name, command in _commands().items()
        for param in command.params
        if param.envvar
    }
    assert read and all(envvar in declared for envvar in read.values()), read


def test_serve_defaults_are_the_server_settings_defaults():
    params = {p.name: p for p in _commands()["serve"].params}
    defaults = ServerSettings()
    assert params["host"].default == defaults.host
    assert params["port"].default == defaults.port
    assert params["log_level"].default == DEFAULT_LOG_LEVEL


def test_tracer_server_and_client_agree_on_the_local_port():
    assert ServerSettings().port == DEFAULT_PORT
    assert default_server_url({}) == DEFAULT_ENDPOINT == f"http://127.0.0.1:{DEFAULT_PORT}"
