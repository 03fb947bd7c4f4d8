"""The demo's final summary, redirected to a file, holds every path and the review command whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LONG = "a_directory_name_long_enough_that_every_path_below_it_is_wider_than_eighty_columns"


def test_demo_summary_redirected_to_a_file_holds_every_path_in_full(tmp_path):
    directory = tmp_path / LONG / "demo"
    log = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEMILL_", "OTEL_")) and k != "COLUMNS"}
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "tracemill.cli", "demo", "--dir", str(directory),
                               "--runs", "6", "--skip-train"], stdout=out, stderr=subprocess.PIPE, text=True,
                              env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    summary = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in text.splitlines()
               if line[:1].isalpha() and "  " in line}
    assert summary["store"] == str(directory / "store")
    assert summary["dataset"] == str(directory / "dataset-dpo")
    assert summary["everything under"] == str(directory)
    review = f"tracemill serve --store 'chdb://{directory / 'store'}'"
    assert summary["review UI"].startswith(review)
    assert len(review) > 80 and Path(summary["dataset"], "train.jsonl").is_file()
    assert "…" not in text  # no cell of any table was cut
