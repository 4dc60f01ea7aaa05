"""The classifier benchmark's bookkeeping (benchmarks/classify_quality.py): which runs it
plans, what re-running skips, mean and spread per group, ratios to the first row, the
goal check and the ood transform. No training here: the script measures that itself."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "classify_quality.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("classify_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["classify_quality"] = module
    spec.loader.exec_module(module)
    return module


def _run(regimen, seed, acc, f, seconds, negatives=False, ood=None):
    sets = {"catalog-test": {"accuracy": acc, "f_score": f}}
    if ood is not None:
        sets["ood"] = {"accuracy": ood, "f_score": ood}
    return {
        "regimen": regimen,
        "negatives": negatives,
        "seed": seed,
        "train_seconds": seconds,
        "epochs_run": 10,
        "sets": sets,
    }


def test_plan_goes_seed_by_seed_each_regimen_then_transfer_with_negatives(bench):
    plan = bench.plan_runs(["transfer", "scratch"], 2)
    keys = [bench.run_key(r) for r in plan]
    assert keys == [
        ("transfer", False, 0),
        ("scratch", False, 0),
        ("transfer", True, 0),
        ("transfer", False, 1),
        ("scratch", False, 1),
        ("transfer", True, 1),
    ]
    assert len(set(keys)) == len(keys)  # a run is never planned twice
    assert all(not r["negatives"] for r in bench.plan_runs(["combi"], 3, negatives=False))


def test_spread_gives_mean_range_and_sample_deviation(bench):
    s = bench.spread([0.9, 1.0, 0.8])
    assert s["mean"] == pytest.approx(0.9)
    assert (s["min"], s["max"]) == (0.8, 1.0)
    assert s["sd"] == pytest.approx(0.1)
    assert bench.spread([0.5])["sd"] == 0.0


def test_groups_keep_first_seen_order_and_ratios_are_to_the_first_row(bench):
    runs = [
        _run("transfer", 0, 1.0, 1.0, 100),
        _run("scratch", 0, 0.5, 0.4, 300),
        _run("transfer", 1, 0.9, 0.8, 120),
        _run("scratch", 1, 0.7, 0.6, 280),
    ]
    rows = bench.with_ratios(bench.group_rows(runs, ("regimen",), "catalog-test"))
    assert [r["regimen"] for r in rows] == ["transfer", "scratch"]
    assert rows[0]["n"] == 2 and rows[0]["accuracy"]["mean"] == pytest.approx(0.95)
    assert rows[1]["f_score"]["mean"] == pytest.approx(0.5)
    assert rows[1]["train_seconds"]["mean"] == pytest.approx(290)
    assert rows[0]["ratio"] == pytest.approx(1.0)
    assert rows[1]["ratio"] == pytest.approx(0.6 / 0.95)


def test_a_run_without_the_set_is_left_out_of_that_sets_rows(bench):
    runs = [_run("transfer", 0, 1.0, 1.0, 100, ood=0.5), _run("transfer", 1, 0.8, 0.8, 100)]
    rows = bench.group_rows(runs, ("regimen",), "ood")
    assert rows[0]["n"] == 1 and rows[0]["accuracy"]["mean"] == 0.5
    assert bench.with_ratios([]) == []


def test_a_zero_baseline_gives_no_ratio(bench):
    rows = bench.with_ratios(
        bench.group_rows([_run("scratch", 0, 0.0, 0.0, 1)], ("regimen",), "catalog-test")
    )
    assert rows[0]["ratio"] is None
    assert "| scratch | 1 |" in bench.table(rows, ("regimen",), "t")


def test_goal_needs_the_accuracy_and_the_time(bench):
    assert bench.goal_met(_run("transfer", 0, 0.95, 0.9, 300))
    loaded = {**_run("transfer", 0, 0.96, 0.9, 500), "cpu_seconds": 120}
    assert not bench.goal_met(loaded) and bench.goal_met(loaded, "cpu_seconds")
    assert not bench.goal_met(_run("transfer", 0, 0.949, 0.9, 10))
    assert not bench.goal_met(_run("transfer", 0, 1.0, 1.0, 301))
    assert not bench.goal_met({"sets": {}, "train_seconds": 1})


def test_summary_counts_the_goal_over_transfer_seeds_without_negatives(bench):
    runs = [
        _run("transfer", 0, 0.97, 0.97, 100, ood=0.8),
        _run("transfer", 1, 0.90, 0.90, 100, ood=0.8),
        _run("transfer", 0, 1.0, 1.0, 100, negatives=True, ood=0.9),
        _run("scratch", 0, 0.6, 0.6, 100, ood=0.5),
    ]
    text = bench.summarise(runs)
    assert "1 of 2 seeds" in text
    assert "| True | 1 |" in text and "| False | 2 |" in text


def test_ood_transform_is_a_grey_mirrored_centre_crop(bench):
    img = Image.new("RGB", (100, 50), (200, 10, 10))
    img.putpixel((15, 25), (0, 0, 255))  # the crop's first column, row 25 - 7
    img.putpixel((5, 5), (0, 255, 0))  # outside the 70 % centre crop
    out = bench.ood_transform(img)
    assert out.size == (70, 36) and out.mode == "RGB"
    r, g, b = out.getpixel((10, 10))
    assert r == g == b  # grey
    assert out.getpixel((69, 18)) != (r, g, b)  # the dot, mirrored to the right edge
    assert out.getpixel((0, 18)) == (r, g, b)
    assert (
        len({out.getpixel((x, y)) for x in range(70) for y in range(36)}) == 2
    )  # the green corner was cropped away


def test_free_strip_is_the_largest_box_free_side_big_enough(bench):
    # one box in the middle-left: the right strip (x 61..200) is the largest
    assert bench.free_strip((200, 100), [(20, 10, 60, 90)]) == (61, 0, 200, 100)
    # two boxes: the strip spans outside both
    assert bench.free_strip((200, 100), [(20, 10, 60, 40), (100, 50, 150, 90)]) == (
        151,
        0,
        200,
        100,
    )
    # boxes covering nearly all: nothing is min_side on each side
    assert bench.free_strip((100, 100), [(10, 10, 90, 90)], min_side=20) is None
    assert bench.free_strip((64, 48), []) == (0, 0, 64, 48)
