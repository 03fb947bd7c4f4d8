from __future__ import annotations

import platformdirs
import pytest

from tracemill.collector.store.dsn import default_store_dsn, parse_dsn
from tracemill.errors import ConfigError


def test_chdb_dsn_gives_directory_and_default_database():
    dsn = parse_dsn("chdb:///var/lib/traces")
    assert (dsn.kind, dsn.path, dsn.database, dsn.embedded) == ("chdb", "/var/lib/traces", "default", True)


def test_chdb_dsn_database_parameter_selects_database():
    assert parse_dsn("chdb:///var/lib/traces?database=agents").database == "agents"


def test_chdb_dsn_percent_escapes_are_decoded_in_path():
    assert parse_dsn("chdb:///Users/me/Application%20Support/store").path == "/Users/me/Application Support/store"


def test_http_dsn_path_is_database_and_url_drops_it():
    dsn = parse_dsn("http://alice:s3cret@ch.internal:8123/traces?compress=lz4")
    assert (dsn.kind, dsn.database, dsn.embedded) == ("http", "traces", False)
    assert dsn.url == "http://alice:s3cret@ch.internal:8123?compress=lz4"


def test_https_dsn_without_path_uses_default_database():
    dsn = parse_dsn("https://ch.example.com:8443")
    assert (dsn.url, dsn.database) == ("https://ch.example.com:8443", "default")


def test_database_argument_overrides_dsn_database():
    assert parse_dsn("http://localhost:8123/traces", database="other").database == "other"
    assert parse_dsn("chdb:///x/y?database=a", database="b").database == "b"


def test_password_is_hidden_from_location():
    assert parse_dsn("http://alice:s3cret@ch:8123/db").location == "http://alice:***@ch:8123"


@pytest.mark.parametrize("bad", ["", "   ", "/var/lib/traces", "postgres://db/x", "file:///tmp/x"])
def test_unsupported_dsn_raises_config_error_listing_accepted_forms(bad):
    with pytest.raises(ConfigError) as info:
        parse_dsn(bad)
    assert "chdb:///absolute/path" in str(info.value)
    assert "http(s)://" in str(info.value)


def test_chdb_dsn_with_two_slashes_raises_config_error_showing_three():
    with pytest.raises(ConfigError, match=r"'chdb://data/traces'.*three slashes.*chdb:///home/me/traces"):
        parse_dsn("chdb://data/traces")


def test_chdb_dsn_without_directory_raises_config_error():
    with pytest.raises(ConfigError, match="absolute directory"):
        parse_dsn("chdb:///")


def test_chdb_dsn_unknown_parameter_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) compress.*\?database=name"):
        parse_dsn("chdb:///x/y?compress=lz4")


def test_http_dsn_without_host_raises_config_error():
    with pytest.raises(ConfigError, match="has no host"):
        parse_dsn("http:///traces")


def test_http_dsn_with_nested_path_raises_config_error():
    with pytest.raises(ConfigError, match="only the database name"):
        parse_dsn("http://localhost:8123/a/b")


def test_bad_port_raises_config_error_without_password():
    with pytest.raises(ConfigError) as info:
        parse_dsn("http://bob:hunter2@localhost:port/db")
    assert "hunter2" not in str(info.value)
    assert "not a valid URL" in str(info.value)


@pytest.mark.parametrize("name", ["my-db", "1abc", "a b", "x;DROP"])
def test_bad_database_name_raises_config_error_naming_it(name):
    with pytest.raises(ConfigError, match="database name"):
        parse_dsn("chdb:///x/y", database=name)


def test_default_store_dsn_prefers_environment():
    assert default_store_dsn({"TRACEMILL_STORE": " http://ch:8123/t "}) == "http://ch:8123/t"


def test_default_store_dsn_is_chdb_directory_in_user_data_dir(monkeypatch):
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: "/home/me/Application Support/tracemill")
    dsn = default_store_dsn({})
    assert dsn == "chdb:///home/me/Application%20Support/tracemill/store"
    assert parse_dsn(dsn).path == "/home/me/Application Support/tracemill/store"


def test_default_store_dsn_ignores_empty_environment_value(monkeypatch):
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: "/data/tracemill")
    assert default_store_dsn({"TRACEMILL_STORE": ""}) == "chdb:///data/tracemill/store"
