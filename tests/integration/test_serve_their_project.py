"""`wb serve` in a Label Studio project someone else set up (issue 22), against the REAL
Label Studio: a project made through the SDK with its own label names and
predicted_values, `wb push --project` into it, `wb serve --connect` (a real process)
printing the mapping, Label Studio's own "retrieve predictions" action storing boxes
under the project's labels, and `wb pull` mapping an annotation back to the catalog class
(and refusing a label it cannot map)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from click.testing import CliRunner
from PIL import Image

from workbench.catalog import ImageRecord
from workbench.cli import cli
from workbench.services import free_port
from workbench.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CLASSES = ["cat", "dog"]
THEIR_CONFIG = """<View>
  <Header value="Draw every animal"/>
  <Image name="photo" value="$photo"/>
  <RectangleLabels name="boxes" toName="photo">
    <Label value="Feline" predicted_values="cat"/>
    <Label value="Canine" predicted_values=" DOG "/>
    <Label value="Airplane"/>
  </RectangleLabels>
</View>"""


def draw(folder, n):
    paths = []
    for i in range(n):
        img = Image.new("RGB", (96, 72), (110 + 20 * i, 120, 130))
        img.paste((220, 40, 40) if i % 2 else (40, 40, 220), (8 + 6 * i, 10, 48 + 6 * i, 50))
        p = folder / f"their {i}.png"
        img.save(p)
        paths.append(p)
    return paths


class Served:
    """`wb serve --connect` as a user runs it, its stderr collected line by line."""

    def __init__(self, ws, port):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", "-w", str(ws.root), "serve", "--connect"]
            + ["--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text, timeout=240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in ln for ln in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"`wb serve --connect` never said {text!r}:\n" + "\n".join(self.lines))

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def wb(ws, *args):
    return CliRunner().invoke(cli, ["-w", str(ws.root), *args], catch_exceptions=False)


def rectangle(label):
    return {
        "from_name": "boxes",
        "to_name": "photo",
        "type": "rectanglelabels",
        "original_width": 96,
        "original_height": 72,
        "image_rotation": 0,
        "value": {"x": 10, "y": 10, "width": 40, "height": 50, "rotation": 0}
        | {"rectanglelabels": [label]},
    }


def test_their_project_gets_boxes_under_its_labels_and_their_annotations_come_back_as_classes(
    label_studio, workspace_factory
):
    import torch

    from workbench.backend.tiny_models import register_untrained_model

    torch.set_num_threads(1)
    ws = workspace_factory(classes=CLASSES)
    label_studio.attach(ws)
    paths = draw(label_studio.images_dir(f"theirs-{uuid.uuid4().hex[:8]}"), 2)
    with ws.open_catalog() as catalog:
        ids = [
            catalog.add_image(
                ImageRecord(id=None, path=str(p.resolve()), width=96, height=72, label=None)
            )
            for p in paths
        ]
        version = register_untrained_model(ws, catalog, CLASSES, promote=True)
    ls = label_studio.client
    pid = ls.projects.create(
        title=f"their project {uuid.uuid4().hex[:6]}", label_config=THEIR_CONFIG
    ).id

    # their project is used as it is: tasks with its image field, its config untouched
    pushed = wb(ws, "push", "--project", str(pid))
    assert pushed.exit_code == 0, pushed.output
    assert "pushed 2 new tasks" in pushed.output
    assert ls.projects.get(id=pid).label_config.strip() == THEIR_CONFIG.strip()
    tasks = list(ls.tasks.list(project=pid, fields="all"))
    assert sorted(t.data["wb_image_id"] for t in tasks) == sorted(ids)
    assert all(t.data["photo"].startswith("/data/local-files/?d=") for t in tasks)

    served = Served(ws, free_port())
    try:
        served.wait_for("labels of 'boxes'")
        said = "\n".join(served.lines)
        assert f"connected to Label Studio project {pid}" in said
        assert (
            "labels of 'boxes' (image 'photo', task field 'photo'): Feline <- cat; Canine <- "
            "dog; Airplane <- nothing; min score 0.3"
        ) in said
        assert "warning" not in said

        ls.actions.create(
            id="retrieve_tasks_predictions",
            project=pid,
            selected_items={"all": True, "excluded": []},
        )
        for task in tasks:
            (pred,) = list(ls.predictions.list(task=task.id))
            assert pred.model_version == version
            assert pred.result, "the untrained model's boxes (scored ~0.34) reach the project"
            assert {r["value"]["rectanglelabels"][0] for r in pred.result} <= {"Feline", "Canine"}
            assert {(r["from_name"], r["to_name"]) for r in pred.result} == {("boxes", "photo")}
        labels = {
            r["value"]["rectanglelabels"][0]
            for t in tasks
            for p in ls.predictions.list(task=t.id)
            for r in p.result
        }
        assert labels == {"Feline", "Canine"}  # both classes reach the project
    finally:
        served.stop()

    # back: an annotation with the project's label becomes the catalog class
    task_of = {t.data["wb_image_id"]: t.id for t in tasks}
    ls.annotations.create(id=task_of[ids[0]], result=[rectangle("Feline")])
    pulled = wb(ws, "pull")
    assert pulled.exit_code == 0, pulled.output
    with ws.open_catalog() as catalog:
        assert [b.label for b in catalog.boxes_for(ids[0])] == ["cat"]

    # a label no class stands for is refused by name; the other task stays as it was
    ls.annotations.create(id=task_of[ids[1]], result=[rectangle("Airplane")])
    refused = wb(ws, "pull")
    assert refused.exit_code == 1
    assert (
        f"Error: 1 task(s) not pulled (e.g. task {task_of[ids[1]]}): their annotations use "
        "project labels that map to no catalog class ('Airplane': no class of the workspace "
        "taxonomy has this name and no class is named for it). Map each to one class"
    ) in refused.output
    with ws.open_catalog() as catalog:
        assert catalog.boxes_for(ids[1]) == []
        assert [b.label for b in catalog.boxes_for(ids[0])] == ["cat"]
    # the user maps it in workbench.toml (read afresh: the CLI recorded the project there)
    Workspace.open(ws.root).set("labelstudio", "label_map", {"Airplane": "dog"})
    fixed = wb(ws, "pull")
    assert fixed.exit_code == 0, fixed.output
    with ws.open_catalog() as catalog:
        assert [b.label for b in catalog.boxes_for(ids[1])] == ["dog"]
