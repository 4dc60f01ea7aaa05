"""The rule "a model that finds nothing" (retrain.finds_nothing): a pure function of its
predictions, one list of boxes per image."""

import pytest

from workbench.detection.findsnothing import FLAT_MIN_BOXES, finds_nothing
from workbench.detection.predict import Detection

FLOOR = 0.3


def _boxes(*scores):
    return [{"label": "cat", "x1": 0, "y1": 0, "x2": 5, "y2": 5, "score": s} for s in scores]


@pytest.mark.parametrize(
    "detections, expected",
    [
        ([], None),  # no images: nothing to judge on
        ([[], [], []], "no boxes at all on 3 images"),
        ([_boxes(0.12, 0.11), _boxes(0.13)], "no box at or above the display floor 0.3"),
        ([_boxes(0.299)], "the highest at 0.30"),  # just below the floor is below
        ([_boxes(0.3)], None),  # at the floor is shown
        ([_boxes(0.9), []], None),
        ([_boxes(*[0.8] * FLAT_MIN_BOXES)], f"all {FLAT_MIN_BOXES} boxes on 1 image score"),
        ([_boxes(*[0.8] * (FLAT_MIN_BOXES - 1))], None),  # too few boxes to call it flat
        ([_boxes(*[0.8] * (FLAT_MIN_BOXES - 1), 0.83)], None),  # a spread of 0.03
        ([_boxes(*[0.8] * (FLAT_MIN_BOXES - 1), 0.81)], "between 0.80 and 0.81"),
        ([_boxes(*[0.95] * FLAT_MIN_BOXES)], None),  # sure of every box: not flat
        ([_boxes(*[0.89] * FLAT_MIN_BOXES)], "between 0.89 and 0.89"),
    ],
)
def test_finds_nothing_table(detections, expected):
    why = finds_nothing(detections, FLOOR)
    if expected is None:
        assert why is None
    else:
        assert why is not None and expected in why


def test_detections_and_stored_dicts_are_judged_alike():
    dets = [[Detection("cat", 0, 0, 5, 5, 0.12)], [Detection("cat", 0, 0, 5, 5, 0.1)]]
    stored = [[d.to_dict() for d in im] for im in dets]
    assert finds_nothing(dets, FLOOR) == finds_nothing(stored, FLOOR)
    assert "the highest at 0.12" in finds_nothing(dets, FLOOR)


def test_push_prioritize_and_promote_warn_without_loading_torch():
    """They print the warning through whatever module they import it from: that module
    must not pull torch in (it cost a push ~8 s and ~800 MB)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(__file__).resolve().parents[2] / "workbench" / "cli"
    for name in ("labelstudio.py", "prioritize.py", "models.py"):
        [module] = set(
            re.findall(
                r"from \.\.(detection\.\w+) import finds_nothing_warning", (cli / name).read_text()
            )
        )
        code = f"import sys, workbench.{module}; print('torch' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "False", f"{name} imports the warning from {module}"
