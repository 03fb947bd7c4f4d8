#!/usr/bin/env bash
# Set up (if needed) and run every benchmark under benchmarks/; each prints its own baseline and ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
status=0
for bench in benchmarks/bench_*.py; do
    echo "== $bench"
    .venv/bin/python "$bench" || status=1
done
exit $status
