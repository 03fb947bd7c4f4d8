"""The layout holds its line: no import circle between package files, small folders, one configuration module,
short functions, no tracked symlink.

The package files are the folders mapped into ``tracemill.*`` (see ``[tool.setuptools.package-dir]``). Imports
are read from the source (every ``import`` statement, inside functions and ``TYPE_CHECKING`` blocks too), so a
circle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = {"tracemill": "tracemill", "tracer": "tracemill.tracer", "integrations": "tracemill.integrations",
                   "collector": "tracemill.collector", "miner": "tracemill.miner", "trainer": "tracemill.trainer"}
MAX_MODULES_PER_FOLDER = 20
MAX_FUNCTION_LINES = 60
_SETTING = re.compile(r"\bTRACEMILL_[A-Z0-9_]*[A-Z0-9]\b")


def _modules() -> dict[str, Path]:
    """Every package module by its dotted name (a package by the name of its ``__init__``)."""
    found: dict[str, Path] = {}
    for folder, prefix in PACKAGE_FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((prefix, *parts))] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``name`` imports (``from a import b`` counts as ``a.b`` when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
    return {target for target in found if target in modules and target != name}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
    return circles


def test_the_circle_finder_finds_a_circle_and_passes_a_chain():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_package_files_import_each_other_in_a_circle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert len(graph) > 100 and sum(map(len, graph.values())) > 200  # the graph really was read
    assert _circles(graph) == []


def test_no_folder_holds_more_than_twenty_modules():
    crowded = {}
    for folder in PACKAGE_FOLDERS:
        for directory in [ROOT / folder, *(p for p in (ROOT / folder).rglob("*") if p.is_dir())]:
            count = len([p for p in directory.glob("*.py") if p.name != "__init__.py"])
            if count > MAX_MODULES_PER_FOLDER:
                crowded[str(directory.relative_to(ROOT))] = count
    assert crowded == {}


def test_only_the_configuration_module_names_tracemill_variables():
    naming = sorted(
        str(path.relative_to(ROOT)) for path in _modules().values() if _SETTING.search(path.read_text())
    )
    assert naming == ["tracemill/config.py"]


def test_every_setting_is_declared_once_with_one_meaning():
    from tracemill import config

    names = [setting.name for setting in config.SETTINGS]
    assert len(names) == len(set(names)) > 20
    for setting in config.SETTINGS:
        assert setting.doc and setting.readers, setting.name
        if setting.default is not None and setting.kind in ("int", "float", "bool"):
            assert isinstance(setting.default, {"int": int, "float": float, "bool": bool}[setting.kind]), setting


def test_no_function_in_package_code_is_over_sixty_lines():
    long = []
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_no_symbolic_link_is_tracked():
    staged = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    links = [line.split("\t", 1)[1] for line in staged.splitlines() if line.startswith("120000 ")]
    assert links == []
