#!/usr/bin/env bash
# Type-check tracer, integrations, collector and the tracemill façade with mypy (config: pyproject.toml).
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
for file in tracemill/*.py; do ln -s "$root/$file" "$tree/tracemill/"; done
for folder in tracer integrations collector miner trainer; do ln -s "$root/$folder" "$tree/tracemill/$folder"; done
modules=()
for init in tracemill/*/__init__.py; do  # packages inside tracemill/: the review UI, the demo
    name="$(basename "$(dirname "$init")")"
    ln -s "$root/tracemill/$name" "$tree/tracemill/$name"
    modules+=(-p "tracemill.$name")
done
for file in tracemill/*.py; do
    name="$(basename "$file" .py)"
    [[ "$name" == "__init__" ]] && modules+=(-m tracemill) || modules+=(-m "tracemill.$name")
done
cd "$tree"
exec "$python" -m mypy --config-file "$root/pyproject.toml" \
    -p tracemill.tracer -p tracemill.integrations -p tracemill.collector "${modules[@]}" "$@"
