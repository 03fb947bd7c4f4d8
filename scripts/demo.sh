#!/usr/bin/env bash
# Set up (if needed) and run the end-to-end demo on the embedded store.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/tracemill demo "$@"
