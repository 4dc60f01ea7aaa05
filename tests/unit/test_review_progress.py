"""`wb review` says why it takes its time (issue 15, item 8b: 834 images with ~95 boxes
each took 5 minutes in silence): the build reports each step with its counts (images,
boxes) and the CLI prints them, also off a terminal."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.cli.review import stage_line
from workbench.review.runner import WorkerProcess
from workbench.review.samples import ReviewSample, sample_counts

pytestmark = pytest.mark.unit

BOX = {"label": "tiger", "bounding_box": [0, 0, 0.5, 0.5]}


def _sample(i: int, gt: int | None, preds: dict[str, int | None]) -> ReviewSample:
    return ReviewSample(
        i,
        f"/{i}.jpg",
        10,
        10,
        {},
        None if gt is None else [BOX] * gt,
        {k: None if n is None else [BOX] * n for k, n in preds.items()},
    )


def test_counts_are_images_and_boxes_ground_truth_and_predicted():
    samples = [
        _sample(1, 95, {"pred_v001": 90, "pred_v002": 96}),
        _sample(2, None, {"pred_v001": 3, "pred_v002": None}),
        _sample(3, 0, {"pred_v001": None, "pred_v002": 0}),
    ]
    assert sample_counts(samples) == {
        "images": 3,
        "annotated": 2,
        "gt_boxes": 95,
        "predicted_boxes": 189,
        "versions": 2,
    }


SYNC = {"images": 834, "annotated": 834, "gt_boxes": 79230, "predicted_boxes": 158460}


def test_the_sync_line_gives_the_counts_and_the_reason():
    line = stage_line("sync", {**SYNC, "versions": 2})
    assert line == (
        "review: writing 834 images with 237,690 boxes (79,230 ground truth, 158,460 "
        "predicted by 2 model versions) into FiftyOne; it stores every box as a document, "
        "so this takes minutes for many boxes (a re-run rewrites only changed images)"
    )
    assert stage_line("evaluate", {"versions": ["v001", "v002"], "annotated": 834}) == (
        "review: evaluating 2 model versions on 834 annotated images"
    )


def test_the_worker_s_stage_events_reach_the_caller():
    events = [
        {"event": "stage", "stage": "sync", "info": SYNC},
        {"event": "progress", "done": 1, "total": 834},
        {"event": "stage", "stage": "evaluate", "info": {"versions": ["v001"]}},
        {"event": "built", "summary": {}},
    ]
    worker = WorkerProcess.__new__(WorkerProcess)
    worker.process = SimpleNamespace(
        stdout=io.StringIO("".join(json.dumps(e) + "\n" for e in events))
    )
    seen = []
    got = worker.until(
        "built", lambda d, t: seen.append(("progress", d, t)), lambda s, i: seen.append((s, i))
    )
    assert got == {"summary": {}}
    assert seen == [("sync", SYNC), ("progress", 1, 834), ("evaluate", {"versions": ["v001"]})]


def test_wb_review_prints_the_steps_off_a_terminal(workspace_factory, monkeypatch):
    ws = workspace_factory()

    def build(ws, model=None, on_progress=None, on_stage=None, **kw):
        on_stage("sync", {**SYNC, "versions": 2})
        on_stage("evaluate", {"versions": ["v001", "v002"], "annotated": 834})
        return {
            "dataset": "d",
            "samples": 834,
            "sync": {"added": 834, "updated": 0, "removed": 0, "unchanged": 0},
            "seconds": 300.0,
            "model": None,
            "evaluations": {},
            "views": [],
            "view_samples": {},
        }

    monkeypatch.setattr("workbench.review.build_review", build)
    monkeypatch.setattr("workbench.review.predictions.ensure_predictions", lambda *a, **k: None)
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "review", "--no-launch", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "review: writing 834 images with 237,690 boxes (79,230 ground truth" in r.stderr
    assert "review: evaluating 2 model versions on 834 annotated images" in r.stderr
    assert "Review dataset d: 834 samples" in r.stdout
    # --json keeps both streams clean of them
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "review", "--no-launch", "--json"])
    assert r.exit_code == 0, r.output
    assert "review: writing" not in r.output and json.loads(r.stdout)["samples"] == 834
