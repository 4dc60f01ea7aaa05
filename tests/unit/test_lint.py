"""The code passes its own lint and is in the one format (ruff, settings in
pyproject.toml). Fix with: .venv/bin/ruff check --fix . && .venv/bin/ruff format ."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGETS = ["workbench", "tests", "benchmarks", "tasks.py"]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None,
    reason="ruff is not installed (it comes with `pip install -e .[dev]`)",
)


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *TARGETS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_ruff_finds_nothing():
    res = _ruff("check", "--output-format", "concise")
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_file_is_in_ruff_format():
    res = _ruff("format", "--check")
    assert res.returncode == 0, res.stdout + res.stderr
