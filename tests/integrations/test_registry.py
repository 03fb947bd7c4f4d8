"""``tracemill.instrument()`` / ``uninstrument()``: names, missing frameworks, idempotence."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tracemill
from tracemill import integrations
from tracemill.integrations import Integration


def test_instrument_without_names_turns_on_every_installed_framework(instrument):
    assert instrument() == ["langchain", "llama_index", "openai"]
    assert integrations.instrumented() == ["langchain", "llama_index", "openai"]


def test_instrument_by_name_turns_on_only_that_one(instrument):
    assert instrument("openai") == ["openai"]
    assert instrument("LlamaIndex") == ["llama_index", "openai"]


def test_uninstrument_by_name_leaves_the_others_on(instrument):
    instrument("openai", "langchain")

    tracemill.uninstrument("openai")

    assert integrations.instrumented() == ["langchain"]


def test_unknown_name_raises_config_error_listing_the_choices():
    with pytest.raises(tracemill.ConfigError) as raised:
        tracemill.instrument("nope")

    assert str(raised.value) == "'nope' is not a tracemill integration; choose from langchain, llama_index, openai"
    assert isinstance(raised.value, ValueError)


def test_missing_framework_named_explicitly_raises_with_the_install_command(monkeypatch):
    monkeypatch.setitem(integrations.REGISTRY, "openai", Integration(
        "openai", "tracemill.integrations.openai", "tracemill_absent_framework", "The OpenAI integration"))

    with pytest.raises(tracemill.MissingDependencyError) as raised:
        tracemill.instrument("openai")

    assert str(raised.value) == (
        "The OpenAI integration needs the 'tracemill_absent_framework' package, which is not installed. "
        "Install it with: pip install 'tracemill[integrations]'")
    assert integrations.instrumented() == []


def test_missing_framework_is_skipped_quietly_when_no_name_is_given(monkeypatch, instrument, caplog):
    monkeypatch.setitem(integrations.REGISTRY, "openai", Integration(
        "openai", "tracemill.integrations.openai", "tracemill_absent_framework", "The OpenAI integration"))
    caplog.set_level("DEBUG", logger="tracemill")

    assert instrument() == ["langchain", "llama_index"]
    assert "tracemill_absent_framework is not installed" in caplog.text


def test_integration_that_fails_to_patch_is_logged_and_skipped(monkeypatch, instrument, caplog):
    monkeypatch.setitem(integrations.REGISTRY, "openai", Integration(
        "openai", "tracemill.integrations._llm", "openai", "The OpenAI integration"))  # a module with no instrument()

    assert instrument() == ["langchain", "llama_index"]
    assert "could not instrument openai; it runs untraced" in caplog.text
    caplog.clear()  # the failure was expected here


def test_importing_tracemill_imports_no_framework():
    code = ("import sys, tracemill, tracemill.integrations; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openai', 'langchain_core', 'llama_index')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "[]"


def test_facade_exports_instrument_and_uninstrument():
    assert tracemill.instrument is integrations.instrument
    assert {"instrument", "uninstrument"} <= set(tracemill.__all__)
