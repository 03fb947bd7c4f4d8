"""Forwarding keeps going when the other endpoint misbehaves."""

from __future__ import annotations

import socket
import threading
import time

from tracemill.collector.ingest.forward import Forwarder


def _garbage_server() -> tuple[socket.socket, list[int]]:
    """Accepts connections and answers each with a line that is not HTTP."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                connections.append(1)
                conn.sendall(b"GARBAGE\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return listener, connections


def test_a_peer_answering_garbage_drops_the_batch_and_keeps_forwarding():
    listener, connections = _garbage_server()
    forwarder = Forwarder(f"http://127.0.0.1:{listener.getsockname()[1]}", attempts=1, timeout_s=5)
    forwarder.start()
    try:
        forwarder.submit(b"first")
        forwarder.submit(b"second")
        deadline = time.monotonic() + 20
        while forwarder.status()["dropped_requests"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        status = forwarder.status()
        assert status["dropped_requests"] == 2
        assert "bad answer from" in status["last_error"]
        assert len(connections) == 2
    finally:
        forwarder.stop()
        listener.close()
