"""`wb dedup adjudicate`: conflict groups go to a real Label Studio adjudication project, experts
answer there, `--pull` settles the groups, and `wb dedup` keeps them settled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from workbench.cli import cli
from workbench.labelstudio.adjudication_project import (
    DISTINCT_CHOICE,
    VERDICT,
    blank_image,
)
from workbench.services import free_port
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = pytest.mark.integration


def wb(ws, *args):
    clean = {"WB_LS_TOKEN": None, "WB_LS_URL": None, "WB_LS_DOCUMENT_ROOT": None}
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args], env=clean)


def _photo(path: Path, seed: int) -> Path:
    """A textured 96x64 JPEG (noise: no two seeds hash alike)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def plant_conflicts(root: Path) -> dict[str, list[Path]]:
    """Two conflicts (one photo filed under two labels, twice) and one clean image."""
    a = _photo(root / "elephant_ivory" / "carving.jpg", 1)
    b = _photo(root / "tiger_claw" / "claw.jpg", 2)
    _photo(root / "tiger" / "alone.jpg", 3)
    for src, other in ((a, "non_wildlife"), (b, "pangolin_raw_scale")):
        (root / other).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / other / src.name)
    return {
        "ivory": [a, root / "non_wildlife" / a.name],
        "claw": [b, root / "pangolin_raw_scale" / b.name],
    }


def _ingest_and_dedup(ws, root: Path) -> dict:
    r = wb(ws, "ingest", str(root))
    assert r.exit_code == 0, r.output
    r = wb(ws, "dedup", "--workers", "1", "--no-progress", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _tasks(ls, project_id: int) -> list:
    return list(ls.tasks.list(project=project_id, fields="all"))


def _answer(ls, task_id: int, choice: str) -> None:
    ls.annotations.create(
        id=task_id,
        result=[
            {
                "from_name": VERDICT,
                "to_name": "image_0",
                "type": "choices",
                "value": {"choices": [choice]},
            }
        ],
    )


def test_conflicts_are_adjudicated_in_label_studio_and_stay_settled(label_studio, tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio.attach(ws)
    planted = plant_conflicts(label_studio.images_dir("dedup-adjudicate"))
    report = _ingest_and_dedup(ws, label_studio.files_root / "dedup-adjudicate")
    assert report["summary"]["conflict_groups"] == 2

    r = wb(ws, "dedup", "adjudicate", "--json")
    assert r.exit_code == 0, r.output
    pushed = json.loads(r.stdout)
    assert (pushed["created"], pushed["already"], pushed["new_project"]) == (2, 0, True)
    pid = pushed["project_id"]
    assert Workspace.open(ws.root).get("labelstudio", "adjudication_project_id") == pid
    assert Workspace.open(ws.root).get("labelstudio", "project_id") is None  # not the labelling one

    ls = label_studio.client
    tasks = _tasks(ls, pid)
    assert len(tasks) == 2
    by_group = {t.data["wb_group_id"]: t for t in tasks}
    assert {str(g): t.id for g, t in by_group.items()} == pushed["tasks"]
    ivory_task = claw_task = None
    for t in tasks:
        captions = " ".join(t.data[f"caption_{i}"] for i in range(2))
        if "elephant_ivory" in captions:
            ivory_task = t
        if "tiger_claw" in captions:
            claw_task = t
        assert t.data["image_2"] == blank_image(2) and t.data["caption_2"] == ""
        # the images really are served to this project (local-files storage connected)
        for i in range(2):
            url = label_studio.url + t.data[f"image_{i}"]
            resp = httpx.get(url, headers={"Authorization": f"Token {label_studio.token}"})
            assert resp.status_code == 200, (url, resp.status_code)
            assert resp.content in {p.read_bytes() for p in planted["ivory"] + planted["claw"]}
    assert "non_wildlife" in ivory_task.data["summary"]
    assert "pangolin_raw_scale" in claw_task.data["caption_0"] + claw_task.data["caption_1"]
    config = ls.projects.get(id=pid).label_config
    assert DISTINCT_CHOICE in config and 'value="non_wildlife"' in config

    r = wb(ws, "dedup", "adjudicate")  # again: nothing new
    assert r.exit_code == 0, r.output
    assert "0 new adjudication task(s), 2 already there" in r.output
    assert len(_tasks(ls, pid)) == 2

    r = wb(ws, "dedup", "adjudicate", "--pull", "--json")  # nobody answered yet
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["settled"] == [] and len(json.loads(r.stdout)["waiting"]) == 2

    _answer(ls, ivory_task.id, "non_wildlife")
    _answer(ls, claw_task.id, DISTINCT_CHOICE)
    r = wb(ws, "dedup", "adjudicate", "--pull")
    assert r.exit_code == 0, r.output
    assert "settled as label 'non_wildlife' by labelstudio:" in r.output
    assert "settled as distinct images by labelstudio:" in r.output
    assert "2 group(s) settled now, 0 unchanged, 0 waiting" in r.output

    ivory_gid, claw_gid = ivory_task.data["wb_group_id"], claw_task.data["wb_group_id"]

    def state():
        with Workspace.open(ws.root).open_catalog() as cat:
            groups = {g: cat.dup_group(g) for g in (ivory_gid, claw_gid)}
            images = {im.path: im for im in cat.images()}
        return groups, images

    def check_settled():
        groups, images = state()
        ivory, claw = groups[ivory_gid], groups[claw_gid]
        assert (ivory.resolution, ivory.resolved_label, ivory.kind) == (
            "label",
            "non_wildlife",
            "duplicate",
        )
        assert ivory.resolved_by.startswith("labelstudio:") and len(ivory.resolved_by) > 12
        ivory_imgs = [images[str(p.resolve())] for p in planted["ivory"]]
        assert {im.label for im in ivory_imgs} == {"non_wildlife"}
        assert sorted(im.status for im in ivory_imgs) == ["active", "duplicate"]
        assert (claw.resolution, claw.resolved_label) == ("distinct", None)
        claw_imgs = [images[str(p.resolve())] for p in planted["claw"]]
        assert [im.status for im in claw_imgs] == ["active", "active"]
        assert {im.label for im in claw_imgs} == {"tiger_claw", "pangolin_raw_scale"}

    check_settled()
    r = wb(ws, "dedup", "adjudicate", "--pull", "--json")  # the same answers again: no change
    assert r.exit_code == 0, r.output
    again = json.loads(r.stdout)
    assert (again["settled"], again["unchanged"]) == ([], 2)

    report = _ingest_and_dedup(ws, label_studio.files_root / "dedup-adjudicate")  # re-run detection
    assert report["summary"]["conflict_groups"] == 0
    check_settled()
    r = wb(ws, "dedup", "adjudicate")
    assert r.exit_code == 0, r.output
    assert "no open conflict groups to adjudicate" in r.output
    assert len(_tasks(ls, pid)) == 2


def test_adjudicate_without_a_reachable_label_studio_says_to_start_it(tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    plant_conflicts(tmp_path / "photos")
    _ingest_and_dedup(ws, tmp_path / "photos")
    ws.set("labelstudio", "url", f"http://127.0.0.1:{free_port()}")  # nothing listens there

    r = wb(ws, "dedup", "adjudicate")
    assert r.exit_code == 1
    assert "Label Studio is not reachable" in r.output and "wb ls start" in r.output
    r = wb(ws, "dedup", "adjudicate", "--pull")
    assert r.exit_code == 1 and "wb ls start" in r.output
