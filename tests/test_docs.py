"""The docs stay true: every block marked runnable runs, and every declared setting is documented.

A fenced ``python`` or ``bash`` block preceded by the line ``<!-- run -->`` is run, in page order,
each in its own process, in a temporary directory shared by the blocks of one page, offline:
``TRACEMILL_STORE`` names a fresh embedded store, and ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``
point the ``openai`` client at the demo's scripted model server on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracemill import config
from tracemill.demo.model import ScriptedModel
from tracemill.demo.server import ModelServer

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
SOURCE_DIRS = ("tracer", "integrations", "collector", "miner", "trainer", "tracemill")
_BLOCK = re.compile(r"^(?P<marker><!-- run -->\n)?```(?P<lang>[a-z]*)\n(?P<code>.*?)^```$", re.M | re.S)
_SETTING = re.compile(r"\bTRACEMILL_[A-Z0-9_]*[A-Z0-9]\b")
_LINK = re.compile(r"\]\((?!https?://|#|mailto:)(?P<target>[^)#\s]+)(?:#[^)]*)?\)")


def runnable_blocks(page: Path) -> list[tuple[str, str]]:
    """The ``(language, code)`` of each block marked ``<!-- run -->`` in a page, in order."""
    blocks = [(m["lang"], m["code"]) for m in _BLOCK.finditer(page.read_text()) if m["marker"]]
    unknown = [lang for lang, _ in blocks if lang not in ("python", "bash")]
    assert not unknown, f"{page.name}: runnable blocks must be python or bash (got {unknown})"
    return blocks


PAGES_WITH_BLOCKS = [p for p in PAGES if runnable_blocks(p)]


def test_the_docs_have_runnable_blocks_in_the_pages_that_teach_by_example():
    names = {p.name for p in PAGES_WITH_BLOCKS}
    assert {"README.md", "quickstart.md", "concepts.md"} <= names
    assert sum(len(runnable_blocks(p)) for p in PAGES_WITH_BLOCKS) >= 8


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    with ModelServer(ScriptedModel()) as server:
        yield server


@pytest.mark.parametrize("page", PAGES_WITH_BLOCKS, ids=lambda p: p.name)
def test_runnable_blocks_run(page, tmp_path, model_server):
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "TRACEMILL_STORE": f"chdb://{tmp_path / 'store'}", "OPENAI_BASE_URL": model_server.base_url,
           "OPENAI_API_KEY": "offline", "HOME": str(tmp_path), "TRACEMILL_DATA_DIR": str(tmp_path / "data"),
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "COLUMNS": "160"}
    for key in ("TRACEMILL_ENDPOINT", "TRACEMILL_SERVER", "TRACEMILL_DEMO_MODEL"):
        env.pop(key, None)
    for number, (lang, code) in enumerate(runnable_blocks(page), 1):
        command = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, (f"{page.name}, runnable block {number} ({lang}) failed:\n{code}\n"
                                      f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")


def _documented() -> set[str]:
    return set(_SETTING.findall((ROOT / "docs" / "configuration.md").read_text()))


def _declared() -> set[str]:
    return {setting.name for setting in config.SETTINGS}


def test_every_declared_setting_is_in_the_configuration_reference():
    assert len(_declared()) >= 20  # the collector alone reads more than a dozen
    missing = sorted(_declared() - _documented())
    assert not missing, f"docs/configuration.md does not document {', '.join(missing)}"


def test_the_configuration_reference_names_no_setting_that_is_not_declared():
    stale = sorted(_documented() - _declared() - {"TRACEMILL_TEST_CLICKHOUSE_URL"})
    assert not stale, f"docs/configuration.md documents {', '.join(stale)}, which tracemill.config does not declare"


def test_every_setting_the_code_names_is_declared():
    named: set[str] = set()
    for folder in SOURCE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            named.update(_SETTING.findall(path.read_text()))
    assert named - _declared() == set()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_at_files_that_exist(page):
    broken = [m["target"] for m in _LINK.finditer(page.read_text()) if not (page.parent / m["target"]).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"
