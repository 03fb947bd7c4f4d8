"""Off a terminal (a pipe, a file, a CI log) the CLI prints paths and commands whole; --json is unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.servers import clean_env, make_request, start_server
from tracemill.cli.output import OFF_TERMINAL_WIDTH, cli_console

LONG = "a_directory_name_long_enough_that_every_path_below_it_is_wider_than_eighty_columns"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with its output to a pipe and no COLUMNS, as in `tracemill status > log` from a script."""
    env = {k: v for k, v in clean_env().items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "tracemill.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_status_table_in_a_pipe_holds_the_store_and_spool_paths_whole(tmp_path, servers):
    server = start_server(tmp_path / LONG)
    servers.append(server)
    assert server.post(make_request(3, seed=11).SerializeToString()).status_code == 200
    server.wait_inserted(3)

    printed = _cli("status", "--server", server.url)
    assert printed.returncode == 0, printed.stderr
    assert len(str(server.store_dir)) > 80 and len(str(server.spool_dir)) > 80
    assert str(server.store_dir) in printed.stdout
    assert str(server.spool_dir) in printed.stdout
    assert "…" not in printed.stdout

    as_json = _cli("status", "--json", "--server", server.url)
    assert json.loads(as_json.stdout)["store"]["location"] == str(server.store_dir)


def test_consoles_off_a_terminal_are_wide_and_keep_rich_layout_on_one():
    console = cli_console()  # pytest captures stdout: not a terminal
    assert not console.is_terminal and console.width == OFF_TERMINAL_WIDTH
    assert cli_console(stderr=True).width == OFF_TERMINAL_WIDTH
