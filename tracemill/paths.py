"""Where tracemill keeps files on this machine: one data directory, declared once.

The data directory setting (:data:`tracemill.config.DATA_DIR`) overrides the user data dir (``platformdirs``).
The embedded store, the server's spool and the tracer's outbox all live under it by default. Like
:mod:`tracemill.errors` this module imports only the standard library, :mod:`tracemill.config` and
(lazily) platformdirs, so every component may use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tracemill import config

__all__ = ["DATA_DIR_ENV", "data_dir", "outbox_dir"]

DATA_DIR_ENV = config.DATA_DIR.name
"""Directory for the embedded store, the spool and the outbox; default: the user data dir."""


def data_dir(env: Mapping[str, str] | None = None) -> str:
    """The data directory setting, else the platform's user data dir for tracemill (absolute)."""
    configured = config.DATA_DIR.raw(env)
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    import platformdirs

    return os.path.abspath(platformdirs.user_data_dir("tracemill", appauthor=False))


def outbox_dir(env: Mapping[str, str] | None = None) -> str:
    """Where zero-config tracing leaves spans when no collector answers (see :mod:`tracemill.tracer.outbox`)."""
    return os.path.join(data_dir(env), "outbox")
