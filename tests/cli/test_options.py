"""The CLI's options read the variables tracemill.config declares, with the declared defaults."""

from __future__ import annotations

import typer.main

from tracemill import config
from tracemill.cli.app import app
from tracemill.client import default_server_url
from tracemill.collector.server.settings import DEFAULT_LOG_LEVEL, ServerSettings
from tracemill.tracer.config import DEFAULT_ENDPOINT, DEFAULT_PORT


def _commands():
    return typer.main.get_command(app).commands  # type: ignore[attr-defined]  # a Typer app with commands is a click Group


def test_every_environment_variable_an_option_reads_is_declared():
    declared = {var.name for var in config.SETTINGS if "cli" in var.readers or "server" in var.readers}
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


def test_every_option_reading_a_variable_has_the_declared_default():
    for name, command in _commands().items():
        for param in command.params:
            if param.envvar and param.name != "openinference":  # a flag pair: None means "not given"
                assert param.default == config.setting(param.envvar).default, (name, param.name)


def test_tracer_server_and_client_agree_on_the_local_port():
    assert ServerSettings().port == DEFAULT_PORT
    assert default_server_url({}) == DEFAULT_ENDPOINT == f"http://127.0.0.1:{DEFAULT_PORT}"
