"""``tracemill serve`` on a real ClickHouse server (HTTP). Runs only with TRACEMILL_TEST_CLICKHOUSE_URL set."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.servers import make_request, start_server
from tracemill.collector.ingest.blocks import encode_payloads, insert_block, span_column_types
from tracemill.collector.store.store import Store

URL = os.environ.get("TRACEMILL_TEST_CLICKHOUSE_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="set TRACEMILL_TEST_CLICKHOUSE_URL to a ClickHouse server DSN to run")


@pytest.fixture
def server_dsn():
    parts = urlsplit(URL)
    database = f"tracemill_serve_{uuid.uuid4().hex[:10]}"
    dsn = urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))
    yield dsn
    with Store.open(dsn, migrate=False) as store:
        store.command(f"DROP DATABASE IF EXISTS `{database}`")


def test_serve_on_a_clickhouse_server_stores_spans_and_a_replayed_token_stores_nothing(tmp_path, servers, server_dsn):
    server = start_server(tmp_path, store_dsn=server_dsn)
    servers.append(server)
    request = make_request(50, seed=3)
    assert server.post(request.SerializeToString()).status_code == 200
    server.wait_inserted(50)
    assert server.status()["store"]["spans"] == 50
    server.stop()
    with Store.open(server_dsn) as store:
        block = encode_payloads([(1, make_request(20, seed=4).SerializeToString())], span_column_types(store))
        insert_block(store, block, dedup_token="replayed-group")
        insert_block(store, block, dedup_token="replayed-group")
        assert store.query("SELECT count() FROM otel_traces").result_rows[0][0] == 70
