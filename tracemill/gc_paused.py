"""Python's cyclic garbage collector paused around bulk work that builds many objects and no reference cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["cyclic_gc_paused"]


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block (also as a decorator) and start it again after, unless the caller
    had paused it. Bulk work (a mining run's feature rows and flags, an export's rows) makes hundreds of thousands
    of small objects that live until the work ends, none in a cycle; each full collection walks them all again.
    Reference counting still frees everything that is dropped."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
