"""``tracemill serve`` looks at every running rollout on a schedule, so a bad candidate is halted even when
nobody runs ``tracemill mine`` (the ``rollout_check_s`` setting, 0 turns it off)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["RolloutWatcher"]

logger = logging.getLogger(__name__)


class RolloutWatcher:
    """Calls :func:`tracemill.miner.versions.rollouts.check_rollouts` on the server's store every ``interval_s``."""

    def __init__(self, get_store: Callable[[], Any], *, interval_s: float) -> None:
        self._get_store = get_store
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.looks = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tracemill-rollout-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def look(self) -> list[dict[str, Any]]:
        """One look at every rollout; halts are logged."""
        from tracemill.miner.versions.rollouts import check_rollouts

        results = check_rollouts(self._get_store())
        self.looks += 1
        for status in results:
            if status["state"] == "halted" and status.get("reason", "").startswith("candidate failure rate"):
                logger.warning("rollout %s is halted: %s", status["name"], status["reason"])
        return results

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.look()
            except Exception as exc:  # the store may be down for a while: look again next time
                logger.warning("could not check rollouts: %s", exc)
