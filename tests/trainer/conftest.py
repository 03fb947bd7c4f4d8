"""The tiny model every trainer test starts from, built once per session from the test exports' texts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tracemill.trainer.tiny import build_tiny_model

# The helper module next to this file (the export writer) is imported by name.
sys.path.insert(0, str(Path(__file__).parent))

import trainer_exports


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), trainer_exports.texts(), seed=0)
