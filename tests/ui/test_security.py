"""The review UI's guard over HTTP: the token cookie, the Content-Security-Policy, cross-site writes refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from tracemill.ui.security import COOKIE_NAME

TOKEN = "ui-test-token"  # the token conftest.py starts the server with


@pytest.fixture
def anonymous(ui_server):
    with httpx.Client(base_url=ui_server.url, timeout=30, follow_redirects=False) as client:
        yield client


@contextlib.contextmanager
def _signed_in(ui_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui_server.url, timeout=30, follow_redirects=False) as client:
        response = client.post("/ui/login", json={"token": TOKEN, "next": "/ui/"}, headers={"Origin": ui_server.url})
        assert response.status_code == 200 and response.json() == {"next": "/ui/"}
        yield client


def _item(ui_server) -> dict:
    return {"trace_id": ui_server.seeded["failed"], "name": "label", "as_author": "security-test", "kind": "label",
            "label": "good"}


def test_pages_ask_for_the_token_once_and_keep_it_in_a_strict_httponly_cookie(anonymous, ui_server):
    assert anonymous.get("/ui/").headers["location"] == "/ui/login?next=%2Fui%2F"
    refused = anonymous.post("/ui/login", json={"token": "wrong"}, headers={"Origin": ui_server.url})
    assert refused.status_code == 401 and "That token is not this server's admin token" in refused.json()["error"]
    assert COOKIE_NAME not in refused.headers.get("set-cookie", "")
    form = anonymous.post("/ui/login", content=f"token={TOKEN}", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Origin": ui_server.url})
    assert form.status_code in (403, 415) and "set-cookie" not in form.headers  # a cross-site form cannot sign in
    with _signed_in(ui_server) as client:
        cookie = client.cookies[COOKIE_NAME]
        assert len(cookie) >= 40 and TOKEN not in cookie  # a random session id, nothing derived from the token
        response = client.get("/ui/")
        assert response.status_code == 200
        assert client.get("/api/flags").status_code == 200  # the cookie stands for the bearer token
    login = anonymous.post("/ui/login", json={"token": TOKEN, "next": "/ui/traces/abc"},
                           headers={"Origin": ui_server.url})  # what the page's script sends
    assert login.status_code == 200 and login.json() == {"next": "/ui/traces/abc"}
    set_cookie = login.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/" in set_cookie
    cross = anonymous.post("/ui/login", json={"token": TOKEN}, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "set-cookie" not in cross.headers


def test_every_ui_response_forbids_inline_script(ui_server):
    with _signed_in(ui_server) as client:
        for path in ("/ui/", f"/ui/traces/{ui_server.seeded['hostile']}", "/ui/static/ui.js", "/ui/login"):
            response = client.get(path)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
            assert response.headers["x-content-type-options"] == "nosniff"
        page = client.get(f"/ui/traces/{ui_server.seeded['hostile']}").text
        assert "<script>window.__tracemill_xss" not in page
        assert "&lt;script&gt;window.__tracemill_xss" in page
        assert "<img src=x" not in page


def test_cross_site_and_form_shaped_writes_with_the_cookie_are_refused_and_store_nothing(ui_server):
    with _signed_in(ui_server) as client:
        before = ui_server.feedback(trace_id=ui_server.seeded["failed"], author="security-test")
        cross = client.post("/api/feedback", json=_item(ui_server), headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403 and "cross-site" in cross.json()["error"]
        form = client.post("/api/feedback", content='{"a": 1}',
                           headers={"Origin": ui_server.url, "Content-Type": "text/plain"})
        assert form.status_code in (403, 415) and "application/json" in form.json()["error"]
        no_origin = client.post("/api/feedback", json=_item(ui_server))
        assert no_origin.status_code == 403
        assert ui_server.feedback(trace_id=ui_server.seeded["failed"], author="security-test") == before
        same = client.post("/api/feedback", json=_item(ui_server), headers={"Origin": ui_server.url})
        assert same.status_code == 201, same.text
        assert len(ui_server.feedback(trace_id=ui_server.seeded["failed"], author="security-test")) == 1


def test_bearer_clients_without_origin_still_write(ui_server):
    with ui_server.api() as client:
        response = client.post("/api/feedback", json={**_item(ui_server), "as_author": "cli-test"})
        assert response.status_code == 201, response.text
        cross = client.post("/api/feedback", json={**_item(ui_server), "as_author": "cli-test"},
                            headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403


def test_login_redirects_only_inside_the_ui(anonymous, ui_server):
    for target in ("//evil.example/", "http://evil.example/", "/api/flags", "/ui\\@evil"):
        response = anonymous.post("/ui/login", json={"token": TOKEN, "next": target}, headers={"Origin": ui_server.url})
        assert response.json() == {"next": "/ui/"}, target
