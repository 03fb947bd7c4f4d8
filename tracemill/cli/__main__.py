"""``python -m tracemill.cli``: the same command line as the ``tracemill`` script."""

from tracemill.cli.app import main

main()
