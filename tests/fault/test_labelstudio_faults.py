"""kill -9 during `wb push` and `wb pull` against the real Label Studio, then the same
command again: Label Studio holds exactly one task per image (the ones the catalog
records), no annotation twice, and the catalog ends as after one clean run.

Push is killed right after Label Studio took a batch but before the catalog recorded it
(`push.imported`: the next push must find those tasks, not import them again) and right
after a batch was recorded (`push.recorded`); pull after the N-th task's annotations
were applied."""

import shutil
from collections import Counter

import pytest
from faultkit import (
    assert_one_task_per_image,
    assert_same_state,
    catalog_state,
    image_paths,
    recorded_tasks,
    wb_json,
    wb_killed,
    wb_ok,
)

from workbench.demo_data import generate_demo_data
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

BATCH = 20  # 120 demo images: 6 batches
PUSH = ("push", "--batch-size", str(BATCH))
ANNOTATED = 30  # tasks given annotations in Label Studio before the pull
ANNOTATED_BY_HAND = ("by_hand", "negative", "skipped")


@pytest.fixture(scope="module")
def ls_demo(label_studio):
    """The demo data (120 images) under the folder Label Studio serves."""
    out = label_studio.images_dir("fault-demo")
    generate_demo_data(out, seed=0, n_images=120)
    return out


def _workspace(label_studio, root, ls_demo, fmt: str):
    ws = Workspace.create(root / "ws", Taxonomy.default())
    label_studio.attach(ws)
    if fmt == "coco":  # boxes: they go to Label Studio as the tasks' annotations
        wb_ok(ws.root, "ingest", str(ls_demo / "annotations.json"), "--format", "coco")
    else:
        wb_ok(ws.root, "ingest", str(ls_demo / "images"))
    return ws.root


def _by_path(ws, tasks) -> Counter:
    """Annotations per image path (image ids may differ between two workspaces)."""
    path_of = image_paths(ws)
    return Counter({path_of[t["image_id"]]: t["annotations"] for t in tasks})


@pytest.fixture(scope="module")
def clean_push(label_studio, ls_demo, module_tmp):
    ws = _workspace(label_studio, module_tmp.mktemp("clean-push"), ls_demo, "coco")
    result = wb_json(ws, *PUSH)
    assert result["created"] == 120 and result["with_annotations"] == 120
    tasks = assert_one_task_per_image(label_studio.client, ws)
    return catalog_state(ws), _by_path(ws, tasks)


@pytest.mark.parametrize(
    "faults, reconciled",
    [
        (["push.imported:2"], BATCH),  # Label Studio has 2 batches, the catalog 1
        (["push.recorded:3"], 0),
        (["push.imported:6"], BATCH),  # the last batch
        (["push.imported:1", "push.imported:2"], BATCH),  # killed again while re-running
    ],
    ids=["imported-2", "recorded-3", "imported-last", "imported-twice"],
)
def test_push_killed_then_rerun_gives_one_task_per_image(
    faults, reconciled, label_studio, ls_demo, clean_push, tmp_path
):
    want_catalog, want_annotations = clean_push
    ws = _workspace(label_studio, tmp_path, ls_demo, "coco")
    for fault in faults:
        wb_killed(ws, *PUSH, fault=fault)

    again = wb_json(ws, *PUSH)
    assert again["reconciled"] == reconciled and again["forgotten"] == 0
    assert again["already"] + again["created"] == 120
    tasks = assert_one_task_per_image(label_studio.client, ws)
    assert _by_path(ws, tasks) == want_annotations  # each imported annotation once
    assert_same_state(catalog_state(ws), want_catalog)

    quiet = wb_json(ws, *PUSH)  # and a further push changes nothing
    assert (quiet["created"], quiet["reconciled"], quiet["already"]) == (0, 0, 120)
    assert len(assert_one_task_per_image(label_studio.client, ws)) == 120


def _rect(label, w, h, k):
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": {
            "x": 5.0 + k % 10,
            "y": 10.0,
            "width": 30.0,
            "height": 40.0,
            "rotation": 0,
            "rectanglelabels": [label],
        },
    }


@pytest.fixture(scope="module")
def annotated(label_studio, ls_demo, module_tmp):
    """A pushed workspace whose project got 30 annotations in Label Studio (boxes,
    negatives, skips), copied for each run; and the clean pull's catalog."""
    root = module_tmp.mktemp("pull")
    ws = _workspace(label_studio, root, ls_demo, "folders")
    wb_ok(ws, "push")
    species = Taxonomy.default().classes("species")
    with_paths = image_paths(ws)
    client = label_studio.client
    todo = sorted(recorded_tasks(ws).items())[:ANNOTATED]
    for k, (task_id, (_, image_id)) in enumerate(todo):
        kind = ANNOTATED_BY_HAND[k % 3] if k % 5 == 0 else "by_hand"
        if kind == "skipped":
            client.annotations.create(id=task_id, result=[], was_cancelled=True)
        elif kind == "negative":
            client.annotations.create(id=task_id, result=[])
        else:
            assert with_paths[image_id]
            client.annotations.create(
                id=task_id, result=[_rect(species[k % len(species)], 320, 240, k)]
            )
    clean = shutil.copytree(ws, root / "clean")
    first = wb_json(clean, "pull")
    assert first["annotated_tasks"] + first["skipped"] == ANNOTATED
    return ws, catalog_state(clean), first


@pytest.mark.parametrize("applied", [1, ANNOTATED // 2, ANNOTATED - 1])
def test_pull_killed_after_n_tasks_then_rerun_equals_a_clean_pull(
    applied, annotated, label_studio, tmp_path
):
    pushed, want, clean_result = annotated
    ws = shutil.copytree(pushed, tmp_path / "ws")

    wb_killed(ws, "pull", fault=f"pull.applied:{applied}")
    again = wb_json(ws, "pull")
    assert again["annotated_tasks"] == clean_result["annotated_tasks"]
    assert again["updated_images"] <= clean_result["updated_images"]
    assert_same_state(catalog_state(ws), want)
    assert len(assert_one_task_per_image(label_studio.client, ws)) == 120

    quiet = wb_json(ws, "pull")  # nothing left to apply
    assert quiet["updated_images"] == 0 and quiet["cleared"] == 0
    assert_same_state(catalog_state(ws), want)
