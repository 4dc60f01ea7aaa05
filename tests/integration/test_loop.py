"""`wb retrain` closes the loop against a REAL Label Studio: it pulls the annotations
made there, trains, promotes, predicts the rest, and writes boxes and the uncertainty
order back, so Label Studio's next task is the model's least certain image."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.labelstudio.tasks import FROM_NAME, TO_NAME, percent_rect

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wb(ws, *args):
    return CliRunner().invoke(cli, ["-w", str(ws.root), *map(str, args)])


def test_retrain_pulls_trains_and_writes_the_order_back(label_studio, demo_data, tmp_path):
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    coco = json.loads((demo_data / "annotations.json").read_text())
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    boxes = {}
    for a in coco["annotations"]:
        boxes.setdefault(a["image_id"], []).append(a)
    # 30 demo images (10 background-free per species-ish mix) copied under the served root
    folder = label_studio.images_dir("loop")
    truth = {}
    for im in [i for i in coco["images"] if i["label"] != "background"][:26] + [
        i for i in coco["images"] if i["label"] == "background"
    ][:4]:
        src = demo_data / im["file_name"]
        dst = folder / im["label"] / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        truth[str(dst.resolve())] = [
            (cats[a["category_id"]], a["bbox"]) for a in boxes.get(im["id"], [])
        ]

    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio.attach(ws)
    assert wb(ws, "ingest", folder).exit_code == 0
    r = wb(ws, "push", "--new-project", "--json")
    assert r.exit_code == 0, r.output
    ws = Workspace.open(ws.root)  # the CLI wrote the project id into workbench.toml
    pid = int(ws.get("labelstudio", "project_id"))

    # annotators label 22 images in Label Studio (species level, as the project asks)
    sdk = label_studio.client
    with ws.open_catalog() as catalog:
        task_of = catalog.ls_task_map(pid)
        images = {im.id: im for im in catalog.images()}
    annotated = []
    for image_id in sorted(task_of)[:22]:
        im = images[image_id]
        result = []
        for cat, (x, y, w, h) in truth[im.path]:
            value = percent_rect({"x1": x, "y1": y, "x2": x + w, "y2": y + h}, im.width, im.height)
            value["rectanglelabels"] = [ws.taxonomy.species_of(cat)]
            result.append(
                {
                    "from_name": FROM_NAME,
                    "to_name": TO_NAME,
                    "type": "rectanglelabels",
                    "original_width": im.width,
                    "original_height": im.height,
                    "image_rotation": 0,
                    "value": value,
                }
            )
        sdk.annotations.create(id=task_of[image_id], result=result)
        annotated.append(image_id)

    r = wb(
        ws,
        "retrain",
        "--backbone",
        "mobilenet_v3",
        "--image-size",
        "96",
        "--max-epochs",
        "1",
        "--batch-size",
        "4",
        "--regimen",
        "scratch",
        "--weights",
        "none",
        "--promote",
        "always",  # a 1-epoch model finds nothing; the loop is what is tested here
        "--json",
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{") :])
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["pull"]["status"] == "done" and "22 images updated" in steps["pull"]["message"]
    assert steps["promote"]["status"] == "done" and report["promoted"] == "v001"
    assert steps["refresh"]["status"] == "done", steps["refresh"]
    assert "ordered least certain first" in steps["refresh"]["message"]

    with ws.open_catalog() as catalog:
        assert len(catalog.images(annotated=True)) == 22
        ranked = catalog.priorities("v001")
    unannotated = set(task_of) - set(annotated)
    assert {p.image_id for p in ranked} == unannotated
    project = sdk.projects.get(id=pid)
    assert project.model_version == "v001" and project.sampling == "Uncertainty sampling"
    nxt = httpx.get(
        f"{label_studio.url}/api/projects/{pid}/next",
        headers={"Authorization": f"Token {label_studio.token}"},
        timeout=60,
    )
    assert nxt.status_code == 200, nxt.text
    assert nxt.json()["id"] == task_of[ranked[0].image_id]
