"""A bound on the request bytes the receiver holds at once, so many large requests cannot exhaust memory.

Each request in the receiver costs about three times its size while it is read, decoded and
spooled (the body, its parsed form, the joined chunks). Without a bound, the worker threads that
decode requests (40 by default) multiply that: 40 requests of 19 MB each once took a server from
1.9 to 6.2 GB. A request reserves its declared size (the limit when it declares none, or is
compressed) before its body is read; one that cannot get its share within ``wait_s`` is answered
429, which OTLP exporters retry, while its body waits in the socket, not in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["ByteBudget"]


class ByteBudget:
    """At most ``limit`` bytes reserved at once; a single reservation over the limit is cut to it."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of bytes (got {limit!r})")
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._condition: asyncio.Condition | None = None

    @contextlib.asynccontextmanager
    async def hold(self, amount: int, *, wait_s: float) -> AsyncIterator[bool]:
        """Reserve ``amount`` bytes for the block; yields False (nothing reserved) after ``wait_s`` without room."""
        amount = max(0, min(amount, self.limit))
        if self._condition is None:  # made in the running loop: uvicorn starts the loop after the app is built
            self._condition = asyncio.Condition()
        condition = self._condition
        async with condition:
            try:
                await asyncio.wait_for(condition.wait_for(lambda: self.used + amount <= self.limit), wait_s)
            except asyncio.TimeoutError:
                granted = False
            else:
                granted = True
                self.used += amount
                self.peak = max(self.peak, self.used)
        try:
            yield granted
        finally:
            if granted:
                async with condition:
                    self.used -= amount
                    condition.notify_all()
