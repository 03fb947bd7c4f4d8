"""``tracemill status / traces / show``: through a running server, or on the store when none runs."""

from __future__ import annotations

import json

import pytest

from tests.servers import StoreHolder, free_port, make_request, run_cli, start_server

TOKEN = "cli-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A server with a token holding two traces: one of 10 plain spans, one whose first span failed."""
    server = start_server(tmp_path_factory.mktemp("cli"), token=TOKEN)
    plain = make_request(10, seed=1, service="cli-svc")
    failing = make_request(10, seed=2, service="cli-svc", prefix="[bold]")
    failing.resource_spans[0].scope_spans[0].spans[0].status.code = 2
    failing.resource_spans[0].scope_spans[0].spans[0].status.message = "it broke"
    for request in (plain, failing):
        assert server.post(request.SerializeToString()).status_code == 200
    server.wait_inserted(20)
    trace_ids = {
        "plain": plain.resource_spans[0].scope_spans[0].spans[0].trace_id.hex(),
        "failing": failing.resource_spans[0].scope_spans[0].spans[0].trace_id.hex(),
    }
    yield server, trace_ids
    server.stop()


def _json(result) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_through_the_server_shows_store_spool_and_writer(served):
    server, _ = served
    status = _json(run_cli("status", "--json", "--server", server.url, "--token", TOKEN))
    assert status["url"] == server.url
    assert status["store"]["spans"] == 20 and status["store"]["traces"] == 2
    assert status["spool"]["spans"] == 0 and status["writer"]["healthy"] is True
    table = run_cli("status", "--server", server.url, env={"TRACEMILL_TOKEN": TOKEN})
    assert table.returncode == 0, table.stderr
    assert "cli-svc (20)" in table.stdout and f"via server {server.url}" in table.stdout


def test_traces_through_the_server_lists_and_filters(served):
    server, ids = served
    listed = _json(run_cli("traces", "--json", "--server", server.url, "--token", TOKEN))["traces"]
    assert {t["trace_id"] for t in listed} == set(ids.values())
    errors = _json(run_cli("traces", "--json", "--errors", "--server", server.url, "--token", TOKEN))["traces"]
    assert [t["trace_id"] for t in errors] == [ids["failing"]]
    searched = _json(run_cli("traces", "--json", "-s", "[bold]step 3", "--server", server.url, "--token", TOKEN))
    assert [t["trace_id"] for t in searched["traces"]] == [ids["failing"]]
    table = run_cli("traces", "--server", server.url, "--token", TOKEN)
    assert ids["plain"][:16] in table.stdout and "[bold]step 0" in table.stdout  # markup shown, not applied


def test_traces_json_has_the_shape_of_the_api(served):
    server, _ = served
    printed = _json(run_cli("traces", "--json", "--server", server.url, "--token", TOKEN))
    assert printed == server.client.get("/api/traces").json()


def test_show_prints_the_trace_tree_from_a_prefix(served):
    server, ids = served
    tree = _json(run_cli("show", ids["failing"][:20], "--json", "--server", server.url, "--token", TOKEN))
    assert tree["trace_id"] == ids["failing"] and tree["span_count"] == 10
    (root,) = tree["roots"]
    assert root["status_message"] == "it broke" and len(root["children"]) == 9
    printed = run_cli("show", ids["failing"], "--server", server.url, "--token", TOKEN)
    assert printed.returncode == 0, printed.stderr
    assert "it broke" in printed.stdout and "[bold]step 9" in printed.stdout


def test_unknown_trace_is_one_error_line(served):
    server, _ = served
    result = run_cli("show", "f" * 32, "--server", server.url, "--token", TOKEN)
    assert result.returncode == 1
    assert "no trace with id" in result.stderr and "Traceback" not in result.stderr


def test_server_with_a_token_asked_without_one_says_how_to_fix(served):
    server, _ = served
    result = run_cli("traces", "--server", server.url)
    assert result.returncode == 1
    assert "requires a token: pass --token or set TRACEMILL_TOKEN" in result.stderr


def test_without_a_server_commands_open_the_store_themselves(tmp_path):
    server = start_server(tmp_path)
    request = make_request(10, seed=5, service="direct")
    assert server.post(request.SerializeToString()).status_code == 200
    server.wait_inserted(10)
    server.stop()
    nobody = f"http://127.0.0.1:{free_port()}"
    listed = _json(run_cli("traces", "--json", "--store", server.dsn, "--server", nobody))
    assert [t["service"] for t in listed["traces"]] == ["direct"]
    status = _json(run_cli("status", "--json", "--store", server.dsn, "--server", nobody))
    assert status["server"] is None and status["store"]["spans"] == 10


def test_explicit_store_other_than_the_servers_is_read_directly(tmp_path, served):
    server, _ = served
    other = f"chdb://{tmp_path}/other"
    status = _json(run_cli("status", "--json", "--store", other, "--server", server.url, "--token", TOKEN))
    assert status["server"] is None and status["store"]["location"] == f"{tmp_path}/other"


def test_status_of_another_store_names_the_store_the_running_server_owns(tmp_path, served):
    server, _ = served
    other = f"chdb://{tmp_path}/other"
    status = _json(run_cli("status", "--json", "--store", other, "--server", server.url, "--token", TOKEN))
    assert status["other_server"]["url"] == server.url
    assert status["other_server"]["store"]["location"] == str(server.store_dir)
    table = run_cli("status", "--store", other, "--server", server.url, "--token", TOKEN)
    assert f"runs for another store: {server.store_dir}" in table.stdout
    assert "not running" not in table.stdout


def test_locked_store_with_no_server_answering_says_so_and_how_to_fix(tmp_path):
    holder = StoreHolder(tmp_path / "store")
    try:
        nobody = f"http://127.0.0.1:{free_port()}"
        result = run_cli("traces", "--store", f"chdb://{tmp_path}/store", "--server", nobody)
    finally:
        holder.release()
    assert result.returncode == 1
    assert f"is in use by another process (pid {holder.proc.pid})" in result.stderr
    assert f"No tracemill server answers at {nobody}" in result.stderr
    assert "--server http://HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_help_lists_every_option_with_its_environment_variable():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for option, variable in [("--store", "TRACEMILL_STORE"), ("--host", "TRACEMILL_HOST"),
                             ("--port", "TRACEMILL_PORT"), ("--token", "TRACEMILL_TOKEN"),
                             ("--spool", "TRACEMILL_SPOOL"), ("--forward", "TRACEMILL_FORWARD")]:
        assert option in result.stdout and variable in result.stdout


def test_default_server_url_follows_tracemill_port():
    from tracemill.client import default_server_url

    assert default_server_url({}) == "http://127.0.0.1:4318"
    assert default_server_url({"TRACEMILL_PORT": "5000"}) == "http://127.0.0.1:5000"
    assert default_server_url({"TRACEMILL_SERVER": "http://box:9000/"}) == "http://box:9000"
