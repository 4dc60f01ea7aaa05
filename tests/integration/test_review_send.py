"""`wb review send`: a saved view's images, or the ones a reviewer tagged in the App, go to
the FRONT of a REAL Label Studio's queue, with the real FiftyOne worker and MongoDB.

The case (review_cases.py) is built for model v1, so ``missed-ground-truth`` holds image
"two" only, and ``worst-images`` holds "two", "one" and "three". The promoted model is
v2: its prioritised scores put image "four" (score 0.1) first until something is sent.
``/next`` locks the task it returns for a day: it is asked once, on a fresh project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from review_cases import build_case  # noqa: E402

from workbench.cli import cli  # noqa: E402
from workbench.labelstudio import connect, push  # noqa: E402
from workbench.labelstudio.tasks import IMAGE_ID_FIELD  # noqa: E402
from workbench.review.environment import fiftyone_env, review_paths  # noqa: E402
from workbench.taxonomy import Taxonomy  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

# Tags a sample and a ground-truth box the way a reviewer does in the App; runs in its
# own process because FiftyOne must be configured (HOME, database) before its import.
TAG_SCRIPT = """
import atexit, os, sys
from workbench.workspace import Workspace
from workbench.review.database import ReviewDatabase
from workbench.review.environment import dataset_name, review_paths
ws = Workspace.open(sys.argv[1])
db = ReviewDatabase.start(review_paths(ws).ensure())
atexit.register(db.stop)
os.environ["FIFTYONE_DATABASE_URI"] = db.uri
import fiftyone as fo
ds = fo.load_dataset(dataset_name(ws))
sample_tagged, box_tagged, tag = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for s in ds:
    if s["wb_image_id"] == sample_tagged:
        s.tags.append(tag)
        s.save()
    if s["wb_image_id"] == box_tagged:
        s.ground_truth.detections[0].tags.append(tag)
        s.save()
"""


def _wb(ws, *args):
    return CliRunner().invoke(cli, ["-w", str(ws.root), *args])


@pytest.fixture(scope="module")
def case(label_studio, module_tmp):
    ws = Workspace.create(
        module_tmp.mktemp("review-send") / "ws", Taxonomy.flat(["ivory", "resin"])
    )
    label_studio.attach(ws)
    ids = build_case(ws, label_studio.images_dir("review-send"))
    built = _wb(ws, "review", "--no-launch", "--no-progress", "--model", "v1")
    assert built.exit_code == 0, built.output
    return ws, ids


def _tasks(label_studio, project_id: int) -> Counter:
    return Counter(
        t.data[IMAGE_ID_FIELD]
        for t in label_studio.client.tasks.list(project=project_id, fields="all")
    )


def _scores(label_studio, project_id: int, version: str) -> dict[int, float]:
    """task id -> score of its prediction of ``version``."""
    return {
        p.task: p.score
        for p in label_studio.client.predictions.list(project=project_id)
        if p.model_version == version
    }


def test_send_view_puts_its_images_first_and_never_duplicates(case, label_studio):
    ws, ids = case
    # "one" and "four" already have tasks; "four" scores 0.1 (v2's most uncertain image)
    client, conn = connect(ws)
    with ws.open_catalog() as catalog:
        pushed = push(ws, catalog, client, conn, new_project=True, only=[ids["one"], ids["four"]])
    assert pushed.created == 2 and pushed.model_version == "v2"
    pid = pushed.project_id

    result = _wb(ws, "review", "send", "missed-ground-truth", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["project_id"] == pid and out["model_version"] == "v2"
    assert [s["image_id"] for s in out["sent"]] == [ids["two"]]
    assert out["sent"][0]["filepath"].endswith("two.png")
    assert (out["pushed"], out["moved"]) == (1, 0)
    assert _tasks(label_studio, pid) == Counter({ids["one"]: 1, ids["four"]: 1, ids["two"]: 1})

    r = httpx.get(
        f"{label_studio.url}/api/projects/{pid}/next",
        headers={"Authorization": f"Token {label_studio.token}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"][IMAGE_ID_FIELD] == ids["two"]

    again = _wb(ws, "review", "send", "missed-ground-truth")
    assert again.exit_code == 0, again.output
    assert "Sent 1 images of view 'missed-ground-truth'" in again.output
    assert "0 pushed as new tasks, 1 already had a task" in again.output
    assert _tasks(label_studio, pid) == Counter({ids["one"]: 1, ids["four"]: 1, ids["two"]: 1})


def test_send_tagged_samples_of_a_view(case, label_studio):
    ws, ids = case
    env = {**os.environ, **fiftyone_env(review_paths(ws).ensure())}
    subprocess.run(
        [sys.executable, "-c", TAG_SCRIPT, str(ws.root), str(ids["three"]), str(ids["one"]), "fix"],
        env=env,
        check=True,
        timeout=180,
        stdout=subprocess.DEVNULL,
    )

    result = _wb(ws, "review", "send", "worst-images", "--tag", "fix", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    pid = out["project_id"]
    sent = {s["image_id"]: s for s in out["sent"]}
    assert set(sent) == {ids["one"], ids["three"]}  # "two" is in the view but not tagged
    tasks = _tasks(label_studio, pid)
    assert all(n == 1 for n in tasks.values()) and {ids["one"], ids["three"]} <= set(tasks)
    # the sent tasks score below every other prediction of the project's version
    scores = _scores(label_studio, pid, out["model_version"])
    sent_tasks = {s["task_id"] for s in out["sent"]}
    assert {t: scores[t] for t in sent_tasks} == {
        s["task_id"]: pytest.approx(s["score"]) for s in out["sent"]
    }
    others = [s for t, s in scores.items() if t not in sent_tasks]
    assert others and max(scores[t] for t in sent_tasks) < min(others)

    # an annotated task is not handed out by /next whatever its score: said, not hidden
    label_studio.client.annotations.create(id=sent[ids["three"]]["task_id"], result=[])
    again = _wb(ws, "review", "send", "worst-images", "--tag", "fix")
    assert again.exit_code == 0, again.output
    assert "Sent 2 images of view 'worst-images' tagged 'fix'" in again.output
    assert "0 pushed as new tasks, 2 already had a task" in again.output
    # "one" too: its ground truth went in as the task's annotation with the plain
    # `push` of the first test (an image with boxes arrives annotated)
    first, second = sorted([ids["one"], ids["three"]])
    assert (
        "2 of the sent images are already annotated in Label Studio" in again.output
        and f"(images {first}, {second})" in again.output
    )

    nothing = _wb(ws, "review", "send", "--tag", "no-such-tag")
    assert nothing.exit_code == 1
    assert (
        "nothing to send: the review dataset tagged 'no-such-tag' holds no images" in nothing.output
    )
    assert "Tags in the dataset: fix" in nothing.output


def test_send_unknown_view_lists_the_saved_views(case):
    ws, _ = case
    result = _wb(ws, "review", "send", "no-such-view")
    assert result.exit_code == 1
    assert "has no saved view 'no-such-view'" in result.output
    assert "missed-ground-truth" in result.output and "worst-images" in result.output


def test_send_needs_a_view_or_a_tag(case):
    ws, _ = case
    result = _wb(ws, "review", "send")
    assert result.exit_code == 2
    assert "give a saved VIEW" in result.output


def test_send_likely_label_errors_marks_the_suspect_boxes_in_the_task_header(case, label_studio):
    ws, ids = case
    result = _wb(ws, "review", "send", "likely-label-errors", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # v1's label errors (test_review_label_errors.py): "two" 1.0, "one" 0.95, "three" 0.5
    assert [s["image_id"] for s in out["sent"]] == [ids["two"], ids["one"], ids["three"]]
    assert out["noted"] == 3
    hints = {
        t.data[IMAGE_ID_FIELD]: t.data["model_hint"]
        for t in label_studio.client.tasks.list(project=out["project_id"], fields="all")
    }
    assert hints[ids["two"]].startswith("Possible label errors (model v1): extra 1.00: ")
    assert "wrong_class 0.70: this ivory box looks like a resin at 10,10-60,60" in hints[ids["two"]]
    assert (
        "missing 0.95: a resin the model sees here has no box at 100,10-150,60"
        in (hints[ids["one"]])
    )
    assert not hints.get(ids["four"], "").startswith("Possible label errors")  # not sent


def _dict(x):
    return x if isinstance(x, dict) else x.model_dump()


def test_send_likely_label_errors_draws_the_suspects_into_the_prediction_annotators_see(
    case, label_studio
):
    """The labelling page shows only predictions of the project's model version
    (Label Studio 1.23, TaskWithAnnotationsAndPredictionsAndDraftsSerializer): the
    suspects are drawn there, each with its text as the region's meta text; accepting
    them adds no class, and `wb report` does not count them as the model's boxes."""
    from workbench.labelstudio.tasks import SUSPECT_ID_PREFIX, is_suspect_marker

    ws, ids = case
    result = _wb(ws, "review", "send", "likely-label-errors", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    pid, version = out["project_id"], out["model_version"]
    assert version == "v2" and out["marked"] == 3
    tasks = {s["image_id"]: s["task_id"] for s in out["sent"]}

    def seen(image_id):  # what the labelling page loads for the task
        r = httpx.get(
            f"{label_studio.url}/api/tasks/{tasks[image_id]}",
            params={"project": pid},
            headers={"Authorization": f"Token {label_studio.token}"},
        )
        r.raise_for_status()
        preds = r.json()["predictions"]
        assert [p["model_version"] for p in preds] == [version]
        return preds[0]

    catalog = ws.open_catalog()
    one = catalog.get_image(ids["one"])
    # "one": v1 saw a resin at 100,10-150,60 that has no box; v2 did not predict it, so
    # it is drawn as a marker next to v2's own ivory box
    regions = seen(ids["one"])["result"]
    markers = [r for r in regions if is_suspect_marker(r)]
    assert len(markers) == 1 and len(regions) == 2
    m = markers[0]
    assert m["id"].startswith(SUSPECT_ID_PREFIX)
    assert m["value"]["rectanglelabels"] == ["resin"]
    assert m["value"]["x"] == pytest.approx(100 / one.width * 100)
    assert m["value"]["width"] == pytest.approx(50 / one.width * 100)
    assert m["meta"]["text"].startswith("Suspect missing 0.95: a resin the model sees here")
    # "two": its ivory box (extra for v1, and a resin's place) marked with both lines
    two = [r for r in seen(ids["two"])["result"] if is_suspect_marker(r)]
    assert {r["value"]["rectanglelabels"][0] for r in two} <= {"ivory", "resin"}
    assert any(
        "wrong_class 0.70: this ivory box looks like a resin" in r["meta"]["text"] for r in two
    )
    assert len(two) == sum(1 for r in seen(ids["two"])["result"] if "meta" in r)

    # sending again replaces the markers, never doubles them
    again = _wb(ws, "review", "send", "likely-label-errors")
    assert again.exit_code == 0, again.output
    assert "suspect boxes marked on 3 tasks" in again.output
    assert len([r for r in seen(ids["one"])["result"] if is_suspect_marker(r)]) == 1

    # the annotator accepts "two"'s marked prediction as it is: pull keeps real classes
    # only, and the economics count v2's two boxes as pre-drawn, the markers as new
    pred = seen(ids["two"])
    label_studio.client.annotations.create(
        id=tasks[ids["two"]],
        result=[{k: v for k, v in r.items() if k != "score"} for r in pred["result"]],
        lead_time=12.0,
        parent_prediction=pred["id"],
    )
    pulled = _wb(ws, "pull")
    assert pulled.exit_code == 0, pulled.output
    labels = {b.label for b in catalog.boxes_by_image([ids["two"]])[ids["two"]]}
    assert labels <= {"ivory", "resin"}
    row = next(r for r in catalog.annotation_economics() if r.task_id == tasks[ids["two"]])
    assert (row.model_version, row.predrawn, row.kept, row.new) == (version, 2, 2, len(two))
    catalog.close()


# the marked prediction's regions as Label Studio's labelling page holds them
PREDICTED_REGIONS_JS = """(() => {
  const ls = window.Htx || window.LabelStudio?.instances?.values?.().next?.().value;
  const store = ls?.annotationStore || window.Htx?.annotationStore;
  if (!store || !store.predictions.length) return null;
  const regions = store.predictions.flatMap(p => p.regionStore ? p.regionStore.regions : []);
  if (!regions.length) return null;
  return regions.map(r => ({
    labels: (r.labeling?.selectedLabels || r.labels?.selectedLabels || []).map(l => l.value),
    meta: r.meta?.text ?? null, x: r.x}));
})()"""


@pytest.mark.browser
def test_the_labelling_page_holds_the_suspect_boxes_with_their_text(case, label_studio, tmp_path):
    from cdp import CHROMIUM, Browser

    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from test_labelstudio_pages import ARTIFACTS, _login

    from workbench.labelstudio import server as ls_server

    ws, ids = case
    result = _wb(ws, "review", "send", "likely-label-errors", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    task = next(s["task_id"] for s in out["sent"] if s["image_id"] == ids["one"])
    creds = json.loads((label_studio.workspace.services_dir / ls_server.AUTH_NAME).read_text())
    with Browser(tmp_path) as page:
        _login(page, label_studio.url, creds["username"], creds["password"])
        page.goto(f"{label_studio.url}/projects/{out['project_id']}/data?task={task}")
        try:
            regions = page.wait_for(PREDICTED_REGIONS_JS, timeout=120)
        finally:
            page.screenshot(ARTIFACTS / "labelstudio-label-error-markers.png")
    marked = [r for r in regions if r["meta"]]
    assert [r["labels"] for r in marked] == [["resin"]]
    assert marked[0]["meta"].startswith("Suspect missing 0.95: a resin the model sees here")
