"""The review dataset in a REAL FiftyOne + bundled MongoDB, built from the catalog.

Every build runs in the FiftyOne worker process with the workspace's own
``mongod``; the hand-made case is in ``review_cases.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from review_cases import EVALUATED, EXPECTED, IMAGES, IVORY_BOX, PREDICTIONS, H, W, build_case

from workbench.catalog import Box
from workbench.errors import WorkbenchError
from workbench.review import build_review, dataset_name, describe_review, review_paths
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _new_case(root: Path):
    ws = Workspace.create(root / "ws", Taxonomy.flat(["ivory", "resin"]))
    ids = build_case(ws, root / "images")
    return ws, ids


@pytest.fixture(scope="module")
def built(module_tmp):
    """The case built once with the default model (v2, promoted) and described."""
    ws, ids = _new_case(module_tmp.mktemp("review"))
    home_before = _snapshot(Path.home() / ".fiftyone")
    summary = build_review(ws)
    described = describe_review(ws)
    assert _snapshot(Path.home() / ".fiftyone") == home_before, "wrote to ~/.fiftyone"
    return ws, ids, summary, described


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")} if folder.exists() else {}


def _by_id(described: dict) -> dict[int, dict]:
    return {s["image_id"]: s for s in described["samples"]}


def test_dataset_holds_the_catalogs_images_and_boxes(built):
    ws, ids, summary, described = built
    assert summary["dataset"] == dataset_name(ws) == described["dataset"]
    # every active image, plus the duplicate next to its kept copy
    assert summary["samples"] == len(IMAGES) == len(described["samples"])
    samples = _by_id(described)
    with ws.open_catalog() as catalog:
        for _name, image_id in ids.items():
            image = catalog.get_image(image_id)
            s = samples[image_id]
            assert s["filepath"] == image.path
            assert (s["split"], s["status"], s["annotated"]) == (
                image.split,
                image.status,
                image.annotated,
            )
            gt = catalog.boxes_for(image_id) if image.annotated else None
            if gt is None:
                assert s["ground_truth"] is None
                continue
            got = sorted(
                (d["label"], *np.round(np.array(d["bounding_box"]) * [W, H, W, H], 6))
                for d in s["ground_truth"]
            )
            want = sorted((b.label, b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1) for b in gt)
            assert got == want


def test_predictions_carry_confidence_and_class_probabilities(built):
    ws, ids, summary, described = built
    samples = _by_id(described)
    for version, per_image in PREDICTIONS.items():
        for name, dets in per_image.items():
            got = samples[ids[name]][f"pred_{version}"]
            assert [(d["label"], d["confidence"], d["probs"]) for d in got] == [
                (d["label"], d["score"], d["probs"]) for d in dets
            ]
    assert samples[ids["five"]]["pred_v1"] is None  # no predictions stored for it


def test_per_sample_tp_fp_fn_match_pycocotools(built):
    ws, ids, summary, described = built
    samples = _by_id(described)
    for version in PREDICTIONS:
        reference = _pycocotools_counts(ws, [ids[n] for n in EVALUATED], version)
        for name in EVALUATED:
            s = samples[ids[name]]
            got = tuple(s[f"eval_{version}_{k}"] for k in ("tp", "fp", "fn"))
            assert got == reference[ids[name]] == EXPECTED[version][name], (version, name)
        # images without ground truth (or excluded as duplicates) are not evaluated
        for name in ("four", "five"):
            assert samples[ids[name]].get(f"eval_{version}_tp") is None
    totals = summary["evaluations"]["v1"]
    assert (totals["tp"], totals["fp"], totals["fn"]) == (1, 3, 2)
    assert summary["evaluations"]["v2"]["mAP50"] == pytest.approx(1.0)


def test_saved_views_hold_the_expected_samples(built):
    ws, ids, summary, described = built
    views = described["views"]
    assert set(views) == set(summary["views"])
    assert views["fixed-by-new-model"] == sorted([ids["one"], ids["two"]])
    assert views["broken-by-new-model"] == [ids["three"]]
    assert views["worst-images"] == [ids["three"]]
    assert views["high-confidence-false-positives"] == []
    assert views["duplicates-and-conflicts"] == sorted([ids["one"], ids["five"]])
    assert views["most-uncertain"] == sorted([ids["four"], ids["three"], ids["one"]])
    assert summary["view_samples"]["most-uncertain"] == 3


def test_views_follow_the_chosen_model_and_rerun_updates_in_place(tmp_path):
    ws, ids = _new_case(tmp_path)
    first = build_review(ws, model="v1")
    assert first["model"] == "v1" and first["previous_model"] is None
    assert "fixed-by-new-model" not in first["views"]
    views = describe_review(ws)["views"]
    assert views["high-confidence-false-positives"] == sorted([ids["one"], ids["two"]])
    assert views["missed-ground-truth"] == [ids["two"]]
    # the ivory box predicted as resin is a confusion, not only an FP plus an FN
    assert views["class-confusions"] == [ids["two"]]

    # nothing changed: nothing rewritten, evaluations kept
    again = build_review(ws, model="v1")
    assert again["sync"] == {
        "added": 0,
        "updated": 0,
        "removed": 0,
        "unchanged": 5,
        "removed_fields": [],
    }
    assert again["evaluations"] == first["evaluations"]

    # an annotator fixes image "two"; image "three" is excluded
    with ws.open_catalog() as catalog:
        catalog.replace_boxes(ids["two"], [Box("resin", *IVORY_BOX)])
        catalog.set_status([ids["three"]], "excluded", "blurry")
    third = build_review(ws, model="v1")
    assert third["sync"]["updated"] == 1 and third["sync"]["removed"] == 1
    assert third["samples"] == 4
    described = describe_review(ws)
    samples = _by_id(described)
    assert [d["label"] for d in samples[ids["two"]]["ground_truth"]] == ["resin"]
    assert (samples[ids["two"]]["eval_v1_tp"], samples[ids["two"]]["eval_v1_fn"]) == (1, 0)
    assert described["views"]["class-confusions"] == []


def test_unknown_model_version_is_refused_with_the_known_ones(built):
    ws = built[0]
    with pytest.raises(WorkbenchError, match="'v9' has no predictions.*v1, v2"):
        build_review(ws, model="v9")


def test_broken_database_gives_a_clear_message(tmp_path):
    ws, _ = _new_case(tmp_path)
    db_dir = review_paths(ws).ensure().database_dir
    # a file where MongoDB expects its storage engine metadata
    (db_dir / "WiredTiger.turtle").write_text("not a database")
    (db_dir / "storage.bson").write_bytes(os.urandom(64))
    with pytest.raises(WorkbenchError, match=r"review database .* failed to start.*move"):
        build_review(ws)


def test_fiftyone_state_stays_in_the_workspace(built):
    ws = built[0]
    paths = review_paths(ws)
    # the fixture checked that the user's ~/.fiftyone did not change
    assert any(paths.database_dir.glob("collection-*.wt"))
    assert not paths.database_state.exists()  # the database stopped with the worker


def _pycocotools_counts(ws, image_ids: list[int], version: str) -> dict[int, tuple[int, int, int]]:
    """Per-image TP/FP/FN from pycocotools' own matching (COCOeval.evalImgs, IoU 0.5)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with ws.open_catalog() as catalog:
        boxes = catalog.boxes_by_image(image_ids)
        preds = catalog.predictions(version, image_ids)
    cats = {"ivory": 1, "resin": 2}
    gt = {
        "images": [{"id": i, "width": W, "height": H} for i in image_ids],
        "categories": [{"id": c, "name": n} for n, c in cats.items()],
        "annotations": [],
    }
    for i in image_ids:
        for b in boxes[i]:
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i,
                    "category_id": cats[b.label],
                    "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1],
                    "area": (b.x2 - b.x1) * (b.y2 - b.y1),
                    "iscrowd": 0,
                }
            )
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    dts = [
        {
            "image_id": i,
            "category_id": cats[d["label"]],
            "score": d["score"],
            "bbox": [d["x1"], d["y1"], d["x2"] - d["x1"], d["y2"] - d["y1"]],
        }
        for i in image_ids
        for d in preds.get(i, [])
    ]
    ev = COCOeval(coco, coco.loadRes(dts), "bbox")
    ev.params.iouThrs = np.array([0.5])
    ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
    ev.evaluate()
    counts = {i: [0, 0, 0] for i in image_ids}
    for e in ev.evalImgs:
        if e is None:
            continue
        c = counts[e["image_id"]]
        dt_m, dt_ign = e["dtMatches"][0], e["dtIgnore"][0]
        c[0] += int(((dt_m > 0) & ~dt_ign).sum())
        c[1] += int(((dt_m == 0) & ~dt_ign).sum())
        c[2] += int(((e["gtMatches"][0] == 0) & ~e["gtIgnore"].astype(bool)).sum())
    return {i: tuple(c) for i, c in counts.items()}


def _explained_by_hand(ws, ids) -> None:
    """What `wb explain` writes for v2 (tests/unit/test_explain.py checks that a real run
    writes this format): image "two" has its ivory box (a TP of v2) flagged, its resin box
    (also a TP) not; image "one"'s box (a TP) is not flagged."""
    from workbench.explain.pictures import write_map
    from workbench.explain.store import merge_index, run_folder

    folder = run_folder(ws.reports_dir, "v2", "eigencam", "backbone.body.7", "backbone.body.7")
    (folder / "maps").mkdir(parents=True)
    heat = np.zeros((H, W), dtype=np.float32)
    heat[70:100, 160:200] = 1.0  # the evidence in a corner, away from both boxes
    images, detections = [], []
    for name, boxes in (
        ("one", [("ivory", (12, 12, 60, 60), 0.8, False)]),
        ("two", [("ivory", IVORY_BOX, 0.1, True), ("resin", (100, 20, 150, 80), 0.6, False)]),
    ):
        key = str(ids[name])
        write_map(heat, folder / "maps" / f"{key}.png")
        images.append(
            {"image": key, "image_id": ids[name], "created": "2026-12-01T00:00:00+00:00"}
            | {"heatmap": f"maps/{key}.png"}
        )
        for label, box, share, flagged in boxes:
            detections.append(
                {"image": key, "label": label, "box": list(box), "inside_share": share}
                | {"flagged": flagged}
            )
    merge_index(
        folder,
        {"method": "eigencam", "layer": "backbone.body.7"}
        | {"images": images, "detections": detections, "created": "2026-12-01T00:00:00+00:00"},
    )


def test_explained_heatmaps_are_attached_and_the_wrong_evidence_view_holds_the_flagged(tmp_path):
    ws, ids = _new_case(tmp_path)
    before = build_review(ws)  # `wb explain` never ran: the view exists, empty
    assert before["view_samples"]["right-class-wrong-evidence"] == 0
    assert before["explained_images"] == 0

    _explained_by_hand(ws, ids)
    summary = build_review(ws)
    assert summary["explained_images"] == 2
    described = describe_review(ws)
    assert described["views"]["right-class-wrong-evidence"] == [ids["two"]]
    samples = _by_id(described)
    two = samples[ids["two"]]
    assert two["heatmap_v2"]["map_path"].endswith(f"maps/{ids['two']}.png")
    assert two["heatmap_v2"]["method"] == "eigencam"
    assert [(d["label"], d.get("cam_flagged")) for d in two["pred_v2"]] == [
        ("ivory", True),
        ("resin", False),
    ]
    assert samples[ids["three"]]["heatmap_v2"] is None  # not explained
    assert "heatmap_v1" not in samples[ids["two"]]  # only the model the views are about
