#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, lint included. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
scripts/typecheck.sh
exec .venv/bin/pytest "$@"
