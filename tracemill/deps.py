"""Lazy imports of optional extras, with an error that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from tracemill.errors import MissingDependencyError


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    ``feature`` says what the user tried to do, so the message reads
    "the embedded store needs chdb: pip install 'tracemill[server]'".
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingDependencyError(
            f"{feature} needs the '{top}' package, which is not installed. "
            f"Install it with: pip install 'tracemill[{extra}]'"
        ) from exc
