"""The push/pull benchmark's arithmetic and bookkeeping (benchmarks/labelstudio_sync.py):
run order, medians and the current / baseline ratio, the printed table, the check that
both versions did the same work, and reading a command's --json output. No timing here:
speed is measured by the script itself, side by side."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "labelstudio_sync.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("labelstudio_sync", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["labelstudio_sync"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _round(version, repeat, push, pull, work=None, annotate=1.0):
    return {
        "version": version,
        "repeat": repeat,
        "seconds": {"push": push, "annotate": annotate, "pull": pull},
        "work": work or {},
    }


def test_rounds_alternate_between_versions_repeat_by_repeat(bench):
    assert bench.interleaved(["baseline", "current"], 3) == [
        ("baseline", 0),
        ("current", 0),
        ("baseline", 1),
        ("current", 1),
        ("baseline", 2),
        ("current", 2),
    ]
    assert bench.interleaved(["current"], 2) == [("current", 0), ("current", 1)]


def test_rows_hold_each_versions_median_and_the_ratio_current_over_baseline(bench):
    rounds = [
        _round("baseline", 0, 2.0, 1.0),
        _round("current", 0, 1.0, 1.5, annotate=2.0),
        _round("baseline", 1, 4.0, 1.0),
        _round("current", 1, 1.2, 1.5, annotate=3.0),
        _round("baseline", 2, 3.0, 9.0),
        _round("current", 2, 50.0, 1.5, annotate=9.0),
    ]
    rows = {r["step"]: r for r in bench.step_rows(rounds, steps=("push", "annotate", "pull"))}
    assert rows["push"]["baseline_s"] == 3.0 and rows["push"]["current_s"] == 1.2
    assert rows["push"]["ratio"] == pytest.approx(0.4)  # the outlier 50 s is ignored
    assert rows["pull"]["ratio"] == pytest.approx(1.5)
    assert rows["annotate"]["control"] and rows["annotate"]["ratio"] == pytest.approx(3.0)
    # total: the median of each round's sum without the control step, not the sum of medians
    assert rows["total"]["baseline_s"] == pytest.approx(5.0)  # sums 3, 5, 12
    assert rows["total"]["current_s"] == pytest.approx(2.7)  # sums 2.5, 2.7, 51.5
    assert rows["total"]["ratio"] == pytest.approx(2.7 / 5.0)
    assert rows["push"]["spread"] == pytest.approx(50.0 / 1.0 - 1)  # current's 1.0 .. 50
    assert rows["pull"]["spread"] == pytest.approx(8.0)  # baseline's 1.0 .. 9.0
    assert list(rows) == ["push", "annotate", "pull", "total"]
    assert not rows["push"]["control"] and not rows["total"]["control"]


def test_without_a_baseline_there_is_no_ratio(bench):
    rows = bench.step_rows([_round("current", 0, 1.0, 2.0)], steps=("push", "pull"))
    assert [(r["baseline_s"], r["current_s"], r["ratio"], r["spread"]) for r in rows] == [
        (None, 1.0, None, None),
        (None, 2.0, None, None),
        (None, 3.0, None, None),
    ]


def test_the_table_marks_the_control_row_and_prints_dashes_for_missing_values(bench):
    rows = [
        {
            "step": "push",
            "baseline_s": 2.0,
            "current_s": 1.0,
            "ratio": 0.5,
            "spread": 0.123,
            "control": False,
        },
        {
            "step": "annotate",
            "baseline_s": 1.234,
            "current_s": 1.3,
            "ratio": 1.05348,
            "spread": 0.5,
            "control": True,
        },
        {
            "step": "total",
            "baseline_s": None,
            "current_s": 3.0,
            "ratio": None,
            "spread": None,
            "control": False,
        },
    ]
    lines = bench.format_table(rows).splitlines()
    assert lines[0].split() == [
        "step",
        "baseline",
        "s",
        "current",
        "s",
        "current/baseline",
        "spread",
    ]
    assert lines[1].split() == ["push", "2.00", "1.00", "0.500", "12%"]
    assert lines[2].split() == ["annotate", "(control)", "1.23", "1.30", "1.053", "50%"]
    assert lines[3].split() == ["total", "-", "3.00", "-", "-"]
    assert len({len(line) for line in lines}) == 1  # columns line up


def test_differing_counts_between_rounds_are_reported(bench):
    same = {"pull": {"updated_images": 12}, "push": {"created": 24}}
    rounds = [_round("baseline", 0, 1, 1, same), _round("current", 0, 1, 1, dict(same))]
    assert bench.work_differences(rounds) == []
    rounds.append(_round("current", 1, 1, 1, {**same, "pull": {"updated_images": 11}}))
    (line,) = bench.work_differences(rounds)
    assert line.startswith("pull: baseline reported {'updated_images': 12}, current (repeat 1)")


def test_the_json_a_command_printed_is_found_after_other_output(bench):
    out = 'note: something\n{\n  "created": 3,\n  "project_id": 7\n}\n'
    assert bench.last_json(out) == {"created": 3, "project_id": 7}
    assert bench.last_json('[\n  {"path": "a"}\n]\n') == [{"path": "a"}]
    with pytest.raises(ValueError, match="no JSON"):
        bench.last_json("pushed 3 new tasks\n")
