"""The built wheel, installed alone with the core dependencies, is complete and light.

The editable install maps the top-level folders into ``tracemill.*``; this test makes sure the
wheel does too, so a layout mistake cannot hide behind the editable install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["tracemill", "tracemill.cli", "tracemill.demo", "tracemill.ui", "tracemill.tracer",
               "tracemill.integrations", "tracemill.collector", "tracemill.collector.store",
               "tracemill.collector.ingest", "tracemill.collector.feedback", "tracemill.collector.server",
               "tracemill.miner", "tracemill.miner.decisive", "tracemill.miner.judge", "tracemill.miner.versions",
               "tracemill.miner.quality", "tracemill.miner.scoring", "tracemill.trainer", "tracemill.trainer.evals",
               "tracemill.tracer.openinference", "tracemill.tracer.tools", "tracemill.tracer.versions"]
HEAVY = ["clickhouse-connect", "chdb", "torch", "trl", "transformers", "scikit-learn", "langchain-core", "openai"]


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel, and everything the build printed."""
    work = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work),
                           str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = work.glob("tracemill-*.whl")
    return wheel, done.stdout + done.stderr


def test_wheel_builds_without_a_setuptools_warning(built_wheel):
    _, output = built_wheel
    # "byte-compiling is disabled" only says that PYTHONDONTWRITEBYTECODE is set; anything else is a finding.
    warnings = [line for line in output.splitlines()
                if "warning" in line.lower() and "byte-compiling is disabled" not in line]
    assert not warnings, "\n".join(warnings)


def test_every_package_folder_is_declared():
    """A folder with an ``__init__.py`` that is missing from ``SUBPACKAGES`` would not be checked below."""
    folders = {"tracer", "integrations", "collector", "miner", "trainer"}
    found = {"tracemill"}
    for init in ROOT.glob("*/**/__init__.py"):
        parts = init.parent.relative_to(ROOT).parts
        if parts[0] in folders:
            found.add(".".join(("tracemill", *parts)))
        elif parts[0] == "tracemill":
            found.add(".".join(parts))
    assert found == set(SUBPACKAGES)


@pytest.fixture(scope="module")
def core_venv(built_wheel, tmp_path_factory) -> Path:
    wheel, _ = built_wheel
    work = tmp_path_factory.mktemp("venv")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    return venv


def _run(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, cwd=venv)


def test_wheel_installs_every_subpackage_from_site_packages(core_venv):
    done = _run(core_venv, f"""
        import importlib, json
        mods = {{name: importlib.import_module(name).__file__ for name in {SUBPACKAGES!r}}}
        print(json.dumps(mods))
    """)
    assert done.returncode == 0, done.stderr
    for name, path in json.loads(done.stdout).items():
        assert "site-packages" in path, (name, path)
        assert str(ROOT) not in path


def test_wheel_carries_the_review_ui_templates_and_static_files(core_venv):
    done = _run(core_venv, """
        from importlib.resources import files
        ui = files("tracemill.ui")
        print(all((ui / p).is_file() for p in ("templates/base.html", "templates/queue.html",
                                               "templates/trace.html", "static/ui.js", "static/ui.css")))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_core_install_is_light_and_has_the_console_script(core_venv):
    listed = subprocess.run([str(core_venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert not installed & set(HEAVY)
    assert {"opentelemetry-sdk", "wrapt", "msgspec"} <= installed
    done = subprocess.run([str(core_venv / "bin" / "tracemill"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "demo" in done.stdout


def test_core_install_traces_and_names_the_missing_extra(core_venv):
    done = _run(core_venv, """
        import tracemill
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        tracemill.init(processor=SimpleSpanProcessor(exporter))

        @tracemill.tool
        def ping():
            return "pong"

        ping()
        print([s.name for s in exporter.get_finished_spans()])
        for attempt in (lambda: tracemill.Store, lambda: tracemill.init(store="chdb:///tmp/x")):
            try:
                attempt()
            except tracemill.MissingDependencyError as exc:
                print(exc)
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "['execute_tool ping']"
    assert len(lines) == 3
    for line in lines[1:]:
        assert "pip install 'tracemill[server]'" in line
