"""A clean stop of a real ``tracemill serve``: it says so, releases its spool, and leaves the spool small."""

from __future__ import annotations

from tests.servers import make_request, start_server


def test_a_clean_stop_prints_a_line_clears_the_lock_file_and_leaves_a_small_spool(tmp_path, servers):
    server = start_server(tmp_path / "server")
    servers.append(server)
    lock = server.spool_dir / "lock"
    assert lock.read_text() == str(server.proc.pid)
    # About 24 MiB of spans pass through the spool.
    for seed in range(6):
        request = make_request(50, seed=seed)
        for span in request.resource_spans[0].scope_spans[0].spans:
            span.attributes.add(key="payload").value.string_value = f"{seed}" * 80_000
        assert server.post(request.SerializeToString()).status_code == 200
    server.wait_inserted(300)
    server.stop()  # SIGTERM
    log = server.log()
    assert "tracemill serve: stopped; 300 spans inserted since start, the spool is empty" in log, log
    assert lock.read_text() == ""
    on_disk = sum(f.stat().st_size for f in server.spool_dir.iterdir())
    assert on_disk < 1 << 20, sorted((f.name, f.stat().st_size) for f in server.spool_dir.iterdir())
