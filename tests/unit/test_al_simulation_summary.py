"""The active-learning benchmark's summary: labels to reach random's final mAP (linear
between rounds), the ratio to random, and the paired per-seed comparison."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "al_simulation.py"


@pytest.fixture(scope="module")
def al():
    spec = importlib.util.spec_from_file_location("al_simulation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["al_simulation"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _run(strategy, seed, values, labels=(10, 20, 30)):
    return {
        "strategy": strategy,
        "seed": seed,
        "curve": [
            {"round": i, "labels": n, "mAP50": v} for i, (n, v) in enumerate(zip(labels, values))
        ],
    }


def test_labels_to_reach_interpolates_between_rounds(al):
    assert al.labels_to_reach([10, 20, 30], [0.1, 0.3, 0.5], 0.4) == pytest.approx(25.0)
    assert al.labels_to_reach([10, 20, 30], [0.1, 0.3, 0.5], 0.05) == 10.0
    assert al.labels_to_reach([10, 20, 30], [0.1, 0.3, 0.5], 0.6) is None


def test_summary_ratio_and_paired_seeds(al):
    runs = [
        _run("random", 0, [0.1, 0.2, 0.4]),
        _run("random", 1, [0.1, 0.3, 0.4]),
        _run("diverse", 0, [0.1, 0.4, 0.5]),
        _run("diverse", 1, [0.1, 0.2, 0.3]),
    ]
    summary = al.summarise(runs)
    table = summary["table"]
    assert table["random"]["target_mAP50"] == pytest.approx(0.4)
    assert table["random"]["labels_needed"] == pytest.approx(30.0)
    # diverse's mean curve 0.1, 0.3, 0.4: reaches 0.4 at 30 labels as well
    assert table["diverse"]["ratio_to_random"] == pytest.approx(1.0)
    # area = mean over the rounds after the seed round; diverse wins seed 0 only
    assert table["diverse"]["area_per_seed"] == pytest.approx([0.45, 0.25])
    assert (table["diverse"]["beats_random"], table["diverse"]["paired_seeds"]) == (1, 2)
    md = al.table_markdown(summary)
    assert "| diverse | 0.400 | 30.0 | 1.00 | 0.450 / 0.250 | 1 of 2 |" in md


def test_a_run_cut_short_is_compared_up_to_the_common_round(al):
    runs = [_run("random", 0, [0.1, 0.2, 0.4]), _run("uncertainty", 0, [0.1, 0.5])]
    summary = al.summarise(runs)
    assert summary["curves"]["random"]["labels"] == [10, 20]
    assert summary["table"]["uncertainty"]["ratio_to_random"] == pytest.approx(
        (10 + 10 * (0.2 - 0.1) / (0.5 - 0.1)) / 20
    )
