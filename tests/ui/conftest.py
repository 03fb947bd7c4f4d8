"""Fixtures of the review UI tests: a seeded store, a real ``tracemill serve`` with a token, headless Chromium.

The store is seeded by ``seed.py`` in its own process (traced through the tracer, then flagged), before the
server takes the store over (chDB: one process per directory). The browser is Debian's chromium driven by
Playwright's Python package through ``executable_path`` (``scripts/setup.sh`` installs the package).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import clean_env

HERE = Path(__file__).parent
TOKEN = "ui-test-token"
"""The admin token."""
REVIEWER_TOKEN = "reviewer-token-of-the-ui-tests"
"""The token of the reviewer ``reviewer``, whom the browser tests sign in as."""


@dataclass
class UiServer:
    url: str
    store_dir: Path
    seeded: dict[str, Any]
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def dsn(self) -> str:
        return f"chdb://{self.store_dir}"

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def feedback(self, **filters: str) -> list[dict[str, Any]]:
        with self.api() as client:
            response = client.get("/api/feedback", params={**filters, "limit": "1000"})
        assert response.status_code == 200, response.text
        return response.json()["feedback"]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``tracemill ARGS`` against this server (its URL and token given in the environment)."""
        return subprocess.run([sys.executable, "-m", "tracemill.cli", *args], capture_output=True, text=True,
                              env=clean_env(TRACEMILL_SERVER=self.url, TRACEMILL_TOKEN=TOKEN), timeout=300)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def seed(store_dir: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(HERE / "seed.py"), f"chdb://{store_dir}"], capture_output=True,
                          text=True, env=clean_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def start(directory: Path, seeded: dict[str, Any]) -> UiServer:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = directory / "server.log"
    command = [sys.executable, "-m", "tracemill.cli", "serve", "--store", f"chdb://{directory / 'store'}",
               "--spool", str(directory / "spool"), "--port", str(port)]
    reviewers = directory / "reviewers.txt"
    reviewers.write_text(f"# author token\nreviewer {REVIEWER_TOKEN}\n")
    env = clean_env(TRACEMILL_TOKEN=TOKEN, TRACEMILL_WRITER_PROCESSES="0", TRACEMILL_FLUSH_INTERVAL_S="0.2",
                    TRACEMILL_REVIEWERS=str(reviewers))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = UiServer(f"http://127.0.0.1:{port}", directory / "store", seeded, proc, log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"tracemill serve exited with {proc.returncode}:\n{server.log()}")
        try:
            with server.api() as client:
                if client.get("/api/health").json()["store"]["available"]:
                    return server
        except (httpx.TransportError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"tracemill serve did not come up in 60s:\n{server.log()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    directory = tmp_path_factory.mktemp("ui-server")
    server = start(directory, seed(directory / "store"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go (TRACEMILL_TEST_ARTIFACTS when set, else a temporary directory)."""
    chosen = os.environ.get("TRACEMILL_TEST_ARTIFACTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("ui-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(browser: Any, ui_server: UiServer) -> Iterator[Any]:
    """A fresh browser context signed in as the reviewer through the UI's token form; page errors fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    opened.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    opened.goto(ui_server.url + "/ui/")
    assert "/ui/login" in opened.url
    opened.fill("input[name=token]", REVIEWER_TOKEN)
    opened.click("form[action='/ui/login'] button[type=submit]")
    opened.wait_for_url(ui_server.url + "/ui/")
    opened.problems = problems
    try:
        yield opened
    finally:
        context.close()
