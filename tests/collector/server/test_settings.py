"""Server settings: one declaration per variable, precedence, refusals that name the key and the value."""

from __future__ import annotations

import os

import pytest

from tracemill.collector.server.server import ENV_VARS, ServerSettings, default_spool_dir, is_loopback
from tracemill.errors import ConfigError


def test_every_variable_is_declared_once_with_its_meaning_and_default():
    names = [var.name for var in ENV_VARS]
    assert len(names) == len(set(names))
    for var in ENV_VARS:
        assert var.name.startswith("TRACEMILL_")
        assert "default" in var.doc, var.name


def test_environment_values_are_read_and_typed():
    env = {
        "TRACEMILL_STORE": "chdb:///tmp/x", "TRACEMILL_PORT": "4400", "TRACEMILL_SPOOL_MAX_BYTES": "1000",
        "TRACEMILL_FLUSH_INTERVAL_S": "0.25", "TRACEMILL_SPOOL_SYNC": "NORMAL", "TRACEMILL_WRITER_PROCESSES": "0",
    }
    settings = ServerSettings.from_env(env)
    assert (settings.store, settings.port, settings.spool_max_bytes) == ("chdb:///tmp/x", 4400, 1000)
    assert (settings.flush_interval_s, settings.spool_sync, settings.writer_processes) == (0.25, "normal", 0)


def test_explicit_values_win_over_the_environment_and_none_means_not_given():
    settings = ServerSettings.from_env({"TRACEMILL_PORT": "4400", "TRACEMILL_HOST": "::1"}, port=5000, host=None)
    assert (settings.port, settings.host) == (5000, "::1")


def test_defaults_apply_when_nothing_is_set():
    settings = ServerSettings.from_env({})
    assert (settings.host, settings.port, settings.token, settings.spool_sync) == ("127.0.0.1", 4318, None, "full")


def test_bad_number_in_the_environment_raises_config_error_naming_key_and_value():
    with pytest.raises(ConfigError, match=r"TRACEMILL_BATCH_SPANS='lots' is not a whole number"):
        ServerSettings.from_env({"TRACEMILL_BATCH_SPANS": "lots"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"spool_max_bytes": 0}, "spool_max_bytes must be a positive whole number"),
        ({"flush_interval_s": 0}, "flush_interval_s must be a positive number"),
        ({"spool_sync": "off"}, "spool_sync must be 'full' or 'normal'"),
        ({"port": 70000}, "port must be between 0 and 65535"),
        ({"token": "  "}, "the token is empty"),
        ({"forward": "jaeger:4318"}, r"forward must be an http\(s\) URL"),
        ({"writer_processes": -1}, "writer_processes must be 0 or a positive whole number"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        ServerSettings.from_env({}, **changes)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.com", "::"])
def test_listening_beyond_loopback_without_a_token_is_refused(host):
    with pytest.raises(ConfigError, match="without a token"):
        ServerSettings.from_env({}, host=host)


def test_listening_beyond_loopback_with_a_token_is_allowed():
    assert ServerSettings.from_env({"TRACEMILL_TOKEN": "t0k"}, host="0.0.0.0").token == "t0k"


@pytest.mark.parametrize(("host", "expected"), [("127.0.0.1", True), ("127.5.5.5", True), ("::1", True),
                                                ("localhost", True), ("[::1]", True), ("10.0.0.1", False)])
def test_loopback_hosts_are_recognized(host, expected):
    assert is_loopback(host) is expected


def test_embedded_store_spool_lives_beside_the_store_one_per_database():
    assert default_spool_dir("chdb:///data/traces") == "/data/traces.spool"
    assert default_spool_dir("chdb:///data/traces?database=prod") == "/data/traces-prod.spool"


def test_server_store_spool_lives_in_the_user_data_dir_one_per_store():
    a = default_spool_dir("http://user:pw@ch1:8123/traces")
    b = default_spool_dir("http://user:pw@ch2:8123/traces")
    assert a != b and os.sep + "spool" + os.sep in a
    assert default_spool_dir("http://user:other@ch1:8123/traces") == a  # the password is not part of the identity


def test_allowed_hosts_and_openinference_are_read_from_the_environment():
    settings = ServerSettings.from_env({"TRACEMILL_ALLOWED_HOSTS": " tracemill.internal, *.corp.example ,",
                                        "TRACEMILL_FORWARD_OPENINFERENCE": "yes"})
    assert settings.allowed_hosts == ("tracemill.internal", "*.corp.example")
    assert settings.openinference is True
    assert ServerSettings.from_env({}).openinference is False


def test_openinference_that_is_not_a_boolean_is_refused_naming_the_variable():
    with pytest.raises(ConfigError, match=r"TRACEMILL_FORWARD_OPENINFERENCE='maybe' is not true or false"):
        ServerSettings.from_env({"TRACEMILL_FORWARD_OPENINFERENCE": "maybe"})


def test_the_sdk_openinference_setting_does_not_turn_on_the_server_conversion():
    """One meaning per name: the SDK's variable is about the spans an agent records, not what the server forwards."""
    assert ServerSettings.from_env({"TRACEMILL_OPENINFERENCE": "1"}).openinference is False


def test_rollout_check_interval_is_read_and_a_negative_one_refused():
    assert ServerSettings.from_env({"TRACEMILL_ROLLOUT_CHECK_S": "0"}).rollout_check_s == 0
    with pytest.raises(ConfigError, match="rollout_check_s must be 0"):
        ServerSettings.from_env({"TRACEMILL_ROLLOUT_CHECK_S": "-5"})
