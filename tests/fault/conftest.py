"""Fixtures of the fault tier (see README.md here)."""

from __future__ import annotations

from pathlib import Path

import pytest

SMALL_DEMO_IMAGES = 120  # planted duplicates and conflicts included; keeps dedup short


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    """`wb demo-data` at 120 images (read-only for tests)."""
    from workbench.demo_data import generate_demo_data

    out = tmp_path_factory.mktemp("small-demo")
    generate_demo_data(out, seed=0, n_images=SMALL_DEMO_IMAGES)
    return out
