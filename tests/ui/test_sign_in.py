"""Signing in to the review UI in a real browser: a reviewer's token, who is signed in, sessions that expire
and that logout revokes (a copied cookie stops working too), and a rotated token ending its sessions."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import clean_env
from tracemill.ui.security import COOKIE_NAME

ADMIN = "admin-token-of-the-sign-in-tests"
ALICE = "alice-token-of-the-sign-in-tests"
TTL_S = 4


@dataclass
class Served:
    url: str
    reviewers: Path
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("sign-in")
    reviewers = directory / "reviewers.txt"
    reviewers.write_text(f"Alice {ALICE}\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "tracemill.cli", "serve", "--store", f"chdb://{directory / 'store'}",
               "--spool", str(directory / "spool"), "--port", str(port), "--reviewers", str(reviewers)]
    env = clean_env(TRACEMILL_TOKEN=ADMIN, TRACEMILL_SESSION_TTL_S=str(TTL_S), TRACEMILL_WRITER_PROCESSES="0")
    log = open(directory / "server.log", "wb")  # noqa: SIM115 - open for the server's whole life
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (directory / "server.log").read_text()
        try:
            if httpx.get(url + "/api/health", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "tracemill serve did not come up"
        time.sleep(0.1)
    try:
        yield Served(url, reviewers, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


@pytest.fixture
def context(browser):
    opened = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        yield opened
    finally:
        opened.close()


def _sign_in(page, served: Served, token: str) -> None:
    page.goto(served.url + "/ui/")
    page.wait_for_url("**/ui/login?next=*")
    page.fill("input[name=token]", token)
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_url(served.url + "/ui/")


def _session_cookie(context) -> dict:
    return next(c for c in context.cookies() if c["name"] == COOKIE_NAME)


def _api_with(cookie: dict, served: Served) -> httpx.Response:
    return httpx.get(served.url + "/api/traces", cookies={COOKIE_NAME: cookie["value"]}, timeout=30)


def test_a_reviewer_signs_in_with_their_token_and_sees_who_is_signed_in(context, served):
    page = context.new_page()
    page.goto(served.url + "/ui/login")
    page.fill("input[name=token]", "not-a-token-of-this-server")
    page.click("form[action='/ui/login'] button[type=submit]")
    error = page.locator("p.form-error[role=alert]")
    error.wait_for(state="visible")
    assert "not this server's admin token" in error.inner_text()
    _sign_in(page, served, ALICE)
    assert page.locator("#signed-in").inner_text() == "signed in as alice"
    assert page.locator("#author").count() == 0  # the author comes from the session, not from a text field
    cookie = _session_cookie(context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and ALICE not in cookie["value"]
    assert 0 < cookie["expires"] - time.time() <= TTL_S + 1
    identity = page.evaluate("() => fetch('/api/identity').then(r => r.json())")
    assert identity == {"role": "reviewer", "author": "alice"}


def test_logout_revokes_the_session_so_a_copied_cookie_stops_working(context, served):
    page = context.new_page()
    _sign_in(page, served, ALICE)
    copied = _session_cookie(context)
    assert _api_with(copied, served).status_code == 200
    page.click("#logout button[type=submit]")
    page.wait_for_url("**/ui/login*")
    assert _api_with(copied, served).status_code == 401  # revoked on the server, not only cleared in the browser
    page.goto(served.url + "/ui/")
    page.wait_for_url("**/ui/login?next=*")


def test_a_session_expires_and_the_next_page_asks_for_the_token_again(context, served):
    page = context.new_page()
    _sign_in(page, served, ALICE)
    copied = _session_cookie(context)
    context.add_cookies([{**copied, "expires": time.time() + 3600}])  # a browser that keeps it longer
    time.sleep(TTL_S + 0.5)
    assert _api_with(copied, served).status_code == 401
    page.goto(served.url + "/ui/")
    page.wait_for_url("**/ui/login?next=*")


def test_rotating_a_token_out_of_the_reviewers_file_ends_its_sessions(context, served):
    page = context.new_page()
    _sign_in(page, served, ALICE)
    copied = _session_cookie(context)
    original = served.reviewers.read_text()
    try:
        served.reviewers.write_text("Alice alice-rotated-token-of-the-sign-in-tests\n")
        assert _api_with(copied, served).status_code == 401
        page.goto(served.url + "/ui/")
        page.wait_for_url("**/ui/login?next=*")
    finally:
        served.reviewers.write_text(original)
