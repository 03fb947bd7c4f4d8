"""Where the writer's CPU work runs: in an encoder thread, or in worker processes.

Turning spans into rows and rows into a Native block is pure Python and costs several times
the insert itself. It never runs in the writer thread: while the writer inserts one block
(ClickHouse's engine works outside the GIL for much of that), the next is encoded. With more
than two cores it runs in worker processes, where it does not compete with the receiver for the
GIL at all. Both modes run the same function, :func:`~tracemill.collector.ingest.blocks.encode_payloads`.

Workers are started with ``spawn`` (never ``fork``: the server process runs ClickHouse's engine
threads), ignore SIGINT (Ctrl-C stops the server, which stops them), exit on their own when the
server dies without stopping them (kill -9 leaves no orphans), and a crashed worker pool is
replaced on the next submit.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from tracemill.collector.ingest.blocks import EncodedBlock, encode_payloads

__all__ = ["BlockEncoder", "BrokenProcessPool", "default_processes"]

logger = logging.getLogger(__name__)


def default_processes() -> int:
    """One worker per core beyond the first, at most four; none on one or two cores.

    Measured on two cores: the receiver, the insert (ClickHouse's own threads) and one worker
    already compete for the CPU, so a worker gains nothing there and costs ~120 MiB.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else min(cores - 1, 4)


def _worker_init(server_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def exit_with_server() -> None:
        # A worker blocked on its task queue never notices that the server was killed; this does.
        while os.getppid() == server_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_with_server, name="tracemill-exit-with-server", daemon=True).start()


class BlockEncoder:
    """Encodes spooled payloads into Native blocks in one thread (``processes=0``) or a process pool."""

    def __init__(self, processes: int) -> None:
        if processes < 0:
            raise ValueError(f"processes must be 0 or more (got {processes!r})")
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._thread: ThreadPoolExecutor | None = None

    def submit(
        self,
        payloads: list[tuple[int, bytes]],
        column_types: tuple[str, ...],
        select: tuple[int, int] | None = None,
    ) -> Future[EncodedBlock]:
        if self.processes == 0:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="tracemill-encoder")
            return self._thread.submit(encode_payloads, payloads, column_types, select)
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
        return self._pool.submit(encode_payloads, payloads, column_types, select)

    def warm_up(self) -> None:
        """Start the worker processes and load their imports now, not on the first batch."""
        if self.processes:
            futures = [self.submit([], ()) for _ in range(self.processes)]
            for future in futures:
                future.result()

    def restart(self) -> None:
        """Drop a broken pool; the next submit starts a fresh one."""
        pool, self._pool = self._pool, None
        if pool is not None:
            logger.warning("an encoder worker process died; starting new ones")
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=True, cancel_futures=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
