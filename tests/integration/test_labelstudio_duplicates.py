"""Tasks that repeat an image (issue 16, D1), against the session's real Label Studio:
`wb push --dry-run` reports them and changes nothing; `wb push` removes those without
annotations of their own (keeping the annotated task, else the oldest), keeps and names
one with its own annotations; and two `wb push` at once no longer make them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from labelstudio_data import add_images, draw_images, imported_workspace

from workbench.cli import cli
from workbench.labelstudio.tasks import IMAGE_ID_FIELD
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLEAN = {"WB_LS_TOKEN": None, "WB_LS_URL": None, "WB_LS_DOCUMENT_ROOT": None}


def wb(ws, *args):
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args], env=CLEAN)


def _project(ws) -> int:
    return Workspace.open(ws.root).project_id()


def _tasks(ls, pid) -> dict[int, list]:
    """image id -> its tasks (with annotations), oldest first."""
    out: dict[int, list] = {}
    for t in ls.tasks.list(project=pid, fields="all"):
        out.setdefault(int(t.data[IMAGE_ID_FIELD]), []).append(t)
    return {i: sorted(ts, key=lambda t: t.id) for i, ts in out.items()}


def _repeat(ls, pid, task) -> int:
    """Import a second task for the same image, as a second `wb push` did (D1)."""
    data = {k: v for k, v in task.data.items()}
    return ls.projects.import_tasks(
        id=pid, request=[{"data": data}], return_task_ids=True
    ).task_ids[0]


def _rect(label: str, x: float) -> list[dict]:
    return [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 96,
            "original_height": 64,
            "value": {
                "x": x,
                "y": 10,
                "width": 30,
                "height": 40,
                "rotation": 0,
                "rectanglelabels": [label],
            },
        }
    ]


def test_dry_run_reports_then_push_removes_repeats_and_keeps_annotated_ones(
    label_studio, tmp_path, request
):
    ls = label_studio.client
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio.attach(ws)
    with ws.open_catalog() as catalog:
        a, b, c, d = add_images(
            catalog, draw_images(label_studio.images_dir(request.node.name), 4, rotated=())
        )
    assert wb(ws, "push").exit_code == 0
    pid = _project(ws)
    first = {i: ts[0] for i, ts in _tasks(ls, pid).items()}
    # image a: the repeat is the annotated one; b: a bare repeat; c: both annotated, differently
    a2 = _repeat(ls, pid, first[a])
    ls.annotations.create(id=a2, result=_rect("tiger_claw", 10))
    b2 = _repeat(ls, pid, first[b])
    c2 = _repeat(ls, pid, first[c])
    ls.annotations.create(id=first[c].id, result=_rect("tiger_claw", 10))
    ls.annotations.create(id=c2, result=_rect("elephant_ivory", 50))
    assert ls.projects.get(id=pid).task_number == 7

    r = wb(ws, "push", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "dry run, nothing changed: push would create 0 new tasks" in r.output
    assert "3 tasks repeat an image that already has a task: push would remove 2" in r.output
    assert f"tasks {first[a].id}, {b2})" in r.output  # a's unannotated original, b's repeat
    assert f"would keep task {c2}: it repeats image {c} (task {first[c].id} stays)" in r.output
    assert ls.projects.get(id=pid).task_number == 7  # nothing removed
    with ws.open_catalog() as catalog:
        assert catalog.ls_task_map(pid) == {i: t.id for i, t in first.items()}  # nor recorded

    r = wb(ws, "push")
    assert r.exit_code == 0, r.output
    assert "removed 2 tasks that repeated an image already in the project" in r.output
    assert (
        f"kept task {c2}: it repeats image {c} (task {first[c].id} stays) but has 1 "
        "annotation(s) of its own" in r.output
    )
    assert f"/data?task={c2}" in r.output and "delete the wrong one there" in r.output
    after = _tasks(ls, pid)
    assert [t.id for t in after[a]] == [a2]  # the annotated repeat stayed, not the oldest
    assert [t.id for t in after[b]] == [first[b].id]  # the oldest stayed
    assert [t.id for t in after[c]] == [first[c].id, c2]  # annotations are never deleted
    assert [t.id for t in after[d]] == [first[d].id]
    with ws.open_catalog() as catalog:
        assert catalog.ls_task_map(pid) == {a: a2, b: first[b].id, c: first[c].id, d: first[d].id}

    r = wb(ws, "push", "--json")  # again: nothing more to remove, c2 still named
    assert r.exit_code == 0, r.output
    dups = json.loads(r.stdout)["duplicates"]
    assert (dups["removed"], [x["task_id"] for x in dups["kept_with_own_annotations"]]) == (0, [c2])
    assert ls.projects.get(id=pid).task_number == 5


def test_repeats_of_imported_truth_are_removed_and_pull_keeps_the_boxes(label_studio, tmp_path):
    ls = label_studio.client
    ws, catalog, images = imported_workspace(label_studio, tmp_path, "dup-imported", seed=3)
    catalog.close()
    assert wb(ws, "push").exit_code == 0
    pid = _project(ws)
    first = {i: ts[0] for i, ts in _tasks(ls, pid).items()}
    annotated = [i for i, im in images.items() if im.annotated][:3]
    # repeats carrying the same ground truth annotation push sent (399 of them in D1)
    repeats = []
    for i in annotated:
        task = first[i]
        ann = task.annotations[0]
        result = ann["result"] if isinstance(ann, dict) else ann.result
        repeats.append(
            ls.projects.import_tasks(
                id=pid,
                request=[{"data": dict(task.data), "annotations": [{"result": result}]}],
                return_task_ids=True,
            ).task_ids[0]
        )
    assert wb(ws, "pull").exit_code == 0  # the repeats' annotations are recorded now
    with ws.open_catalog() as catalog:
        boxes_before = {i: [b.xyxy for b in catalog.boxes_for(i)] for i in images}

    r = wb(ws, "push")
    assert r.exit_code == 0, r.output
    assert "removed 3 tasks that repeated an image" in r.output and "kept task" not in r.output
    after = _tasks(ls, pid)
    assert all([t.id for t in after[i]] == [first[i].id] for i in annotated)

    r = wb(ws, "pull", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["cleared"] == 0  # removing a repeat took no boxes away
    with ws.open_catalog() as catalog:
        assert {i: [b.xyxy for b in catalog.boxes_for(i)] for i in images} == boxes_before


def test_two_pushes_at_once_make_one_task_per_image(label_studio, tmp_path):
    """D1: two `wb push` at once gave 4,599 tasks for 2,400 images."""
    ws, catalog, images = imported_workspace(label_studio, tmp_path, "dup-two-pushes", seed=4)
    catalog.close()
    assert wb(ws, "push", "--limit", "1").exit_code == 0
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    env.update(PYTHONPATH=str(REPO), WB_LOCK_WAIT="300")
    cmd = [sys.executable, "-m", "workbench", "-w", str(ws.root), "push", "--batch-size", "5"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=400) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert not any("Traceback" in err for _, err in outs), outs
    created = sorted(int(out.split("pushed ")[1].split()[0]) for out, _ in outs)
    assert created == [0, len(images) - 1], outs  # one pushed them all, the other none
    pid = _project(ws)
    assert label_studio.client.projects.get(id=pid).task_number == len(images)
    assert sorted(_tasks(label_studio.client, pid)) == sorted(images)
