"""The outbox: a directory of OTLP protobuf files that zero-config tracing writes when no collector answers.

One file per export batch, each an ``ExportTraceServiceRequest`` exactly as OTLP/HTTP would have
sent it. Files are written under a temporary name and renamed, so a reader never sees half a file.
Readers (``tracemill serve`` and the commands that open the store, see :mod:`tracemill.collector.ingest.outbox`)
take a file by renaming it to a claimed name first, so two readers never ingest the same file;
a claim whose process died is taken over. The file name doubles as the insert deduplication token,
so a reader that crashes after inserting and before deleting stores nothing twice on the retry.

Only the standard library here: the tracer never imports the collector.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Generator
from contextlib import suppress

__all__ = ["SUFFIX", "claim_all", "finish", "pending", "release", "set_aside", "write"]

SUFFIX = ".otlp.pb"
_CLAIMED = ".claimed-"
_counter = itertools.count()


def write(directory: str, payload: bytes) -> str:
    """Store one serialized OTLP trace request durably in ``directory``; return the file's path."""
    os.makedirs(directory, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{next(_counter)}{SUFFIX}"
    final = os.path.join(directory, name)
    temporary = os.path.join(directory, "." + name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    return final


def pending(directory: str) -> list[str]:
    """Names of the files waiting in ``directory`` (oldest first), claimed by a dead process included."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name.endswith(SUFFIX):
            out.append(name)
        elif _CLAIMED in name:
            base, _, pid = name.rpartition(_CLAIMED)
            if base.endswith(SUFFIX) and pid.isdigit() and not _alive(int(pid)):
                out.append(name)
    return sorted(out)


def claim_all(directory: str) -> Generator[tuple[str, str, bytes], None, None]:
    """Claim each waiting file in turn: yields ``(claimed path, token, payload)``.

    The caller must :func:`finish` (stored) or :func:`release` (try again later) each claimed path.
    """
    for name in pending(directory):
        base = name.rpartition(_CLAIMED)[0] if _CLAIMED in name else name
        source = os.path.join(directory, name)
        claimed = os.path.join(directory, f"{base}{_CLAIMED}{os.getpid()}")
        try:
            os.rename(source, claimed)
        except FileNotFoundError:  # another reader took it first
            continue
        try:
            with open(claimed, "rb") as handle:
                payload = handle.read()
        except OSError:
            release(claimed)
            continue
        yield claimed, base.removesuffix(SUFFIX), payload


def finish(claimed: str) -> None:
    """The file's spans are stored: remove it."""
    with suppress(FileNotFoundError):
        os.remove(claimed)


def release(claimed: str) -> None:
    """The file could not be stored now: put it back for the next reader."""
    base = claimed.rpartition(_CLAIMED)[0]
    with suppress(FileNotFoundError):
        os.replace(claimed, base)


def set_aside(claimed: str, reason: str) -> str:
    """The file can never be stored (its payload is refused): move it to ``rejected/`` with the reason beside it."""
    directory, name = os.path.split(claimed)
    rejected = os.path.join(directory, "rejected")
    os.makedirs(rejected, exist_ok=True)
    target = os.path.join(rejected, name.rpartition(_CLAIMED)[0])
    os.replace(claimed, target)
    with open(target + ".reason.txt", "w", encoding="utf-8") as handle:
        handle.write(reason + "\n")
    return target


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a claim of ours that is still on disk was left by an earlier, interrupted pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
