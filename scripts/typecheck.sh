#!/usr/bin/env bash
# Type-check every package of tracemill with mypy (config: pyproject.toml): the façade and its cli/, ui/ and
# demo/, and the tracer, integrations, collector, miner and trainer folders.
#
# The folders are mapped into the tracemill.* namespace by setuptools' package-dir, which mypy cannot
# follow, so mypy runs on a tree of symbolic links with the installed layout (build/typecheck/tracemill).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
python="${PYTHON:-$root/.venv/bin/python}"
tree="$root/build/typecheck"
rm -rf "$tree"
mkdir -p "$tree/tracemill"
for entry in tracemill/*.py tracemill/*/; do
    entry="${entry%/}"
    [[ "$entry" == */__pycache__ ]] && continue
    ln -s "$root/$entry" "$tree/tracemill/"
done
for folder in tracer integrations collector miner trainer; do ln -s "$root/$folder" "$tree/tracemill/$folder"; done
cd "$tree"
exec "$python" -m mypy --config-file "$root/pyproject.toml" -p tracemill "$@"
