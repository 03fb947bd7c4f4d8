"""The review UI served by ``tracemill serve`` under ``/ui/``: the queue of flagged runs, a trace with its
decisive step, and editors that write feedback through the same checked path as the API.

Server-rendered (Starlette + Jinja2, everything escaped), a small script and stylesheet served
from this package, no build step and no third-party assets. :mod:`tracemill.ui.security` guards it,
:mod:`tracemill.ui.routes` serves it. Nothing is imported here, so the package imports without the
``[server]`` extra.
"""
