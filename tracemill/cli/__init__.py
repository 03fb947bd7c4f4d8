"""The ``tracemill`` command line: one module per command group, thin over the library."""

from tracemill.cli.app import app, main

__all__ = ["app", "main"]
