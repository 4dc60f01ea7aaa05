"""What an annotator sees: Label Studio's own labelling page, rendered in headless Chromium.

Logs in through Label Studio's login form (a real session, as a person would), opens a
task that `wb push` created, and checks the page shows what the task promised: the
hint headers, and the boxes drawn (imported ground truth as the annotation, the
model's boxes as a prediction). Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cdp import CHROMIUM, Browser
from labelstudio_data import add_promoted_model, imported_workspace

from workbench.labelstudio import connect, push
from workbench.labelstudio import server as ls_server
from workbench.labelstudio.tasks import IMAGE_ID_FIELD
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium)"
    ),
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# the labelling page's regions, read from Label Studio's own state: one entry per
# region, as the outliner lists them (label, and whether it is a prediction)
REGIONS_JS = """(() => {
  const ls = window.Htx || window.LabelStudio?.instances?.values?.().next?.().value;
  const store = ls?.annotationStore || window.Htx?.annotationStore;
  const a = store?.selected;
  if (!a || !a.regionStore) return null;
  return {
    kind: a.type,
    regions: a.regionStore.regions.map(r => ({
      labels: (r.labeling?.selectedLabels || r.labels?.selectedLabels || [])
                .map(l => l.value),
      x: r.x, y: r.y, w: r.width, h: r.height})),
    annotations: store.annotations.length,
    predictions: store.predictions.length,
  };
})()"""


# the labelling canvas's photo once loaded: its natural size. Label Studio fetches the
# local-files URL and shows it as a blob: URL; the Data Manager's thumbnails (drawn far
# smaller than they are) do not count.
IMAGE_JS = """(() => {
  const img = [...document.images].find(i => i.complete && i.naturalWidth > 0
      && i.getBoundingClientRect().width > 300);
  return img ? [img.naturalWidth, img.naturalHeight] : null;
})()"""


def _login(page: Browser, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/user/login/")
    page.wait_for("!!document.querySelector('input[name=email]')", timeout=60)
    page.evaluate(f"""(() => {{
        const f = document.querySelector('input[name=email]').form;
        f.querySelector('input[name=email]').value = {json.dumps(username)};
        f.querySelector('input[name=password]').value = {json.dumps(password)};
        f.submit(); return true; }})()""")
    page.wait_for("!location.pathname.startsWith('/user/login')", timeout=60)


def test_an_imported_image_opens_with_its_boxes_drawn_and_the_hints_shown(label_studio, tmp_path):
    ws, catalog, images = imported_workspace(label_studio, tmp_path, "pages", seed=5)
    boxed = max(images, key=lambda i: len(catalog.boxes_for(i)))
    truth = catalog.boxes_for(boxed)
    assert truth
    add_promoted_model(catalog, [boxed])
    client, conn = connect(ws)
    pid = push(ws, catalog, client, conn).project_id
    task = next(
        t
        for t in label_studio.client.tasks.list(project=pid, fields="all")
        if t.data[IMAGE_ID_FIELD] == boxed
    )
    creds = json.loads((label_studio.workspace.services_dir / ls_server.AUTH_NAME).read_text())

    with Browser(tmp_path) as page:
        _login(page, label_studio.url, creds["username"], creds["password"])
        page.goto(f"{label_studio.url}/projects/{pid}/data?task={task.id}")
        try:
            page.wait_for("document.body.innerText.includes('COCO import')", timeout=120)
            state = page.wait_for(REGIONS_JS, timeout=60)
            # the photo itself, served by Label Studio's local-files storage, is on screen
            shown = page.wait_for(IMAGE_JS, timeout=60)
        finally:
            page.screenshot(ARTIFACTS / "labelstudio-imported-task.png")
        text = page.text()

    assert task.data["label_hint"] in text and "Boxes annotated in the COCO import" in text
    assert "model v-test-1's boxes are under Predictions" in text
    assert shown == [images[boxed].width, images[boxed].height]
    assert state["kind"] == "annotation" and state["predictions"] == 1
    tax = ws.taxonomy
    got = sorted((r["labels"][0], round(r["x"], 2)) for r in state["regions"])
    want = sorted(
        (tax.species_of(b.label), round(b.x1 / images[boxed].width * 100, 2)) for b in truth
    )
    assert got == want
    catalog.close()


# every photo drawn at a useful size on the page: [natural width, top, left, height]
PHOTOS_JS = """(() => [...document.images]
  .filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 120)
  .map(i => { const r = i.getBoundingClientRect();
              return [i.naturalWidth, Math.round(r.top), Math.round(r.left),
                      Math.round(r.height)]; }))()"""


QUESTION_TOP_JS = """(() => {
  const el = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')]
      .find(e => e.innerText.includes('Which label is right'));
  return el ? el.getBoundingClientRect().top : null; })()"""


def _click_text(page: Browser, selector: str, text: str) -> None:
    """Click the element matching ``selector`` that holds the text ``text`` (a choice's
    label also shows its hotkey, so match a text node, not the whole text)."""
    clicked = page.evaluate(f"""(() => {{
        const has = n => [...n.childNodes].some(c => c.nodeType === 3
            && c.textContent.trim() === {json.dumps(text)});
        const el = [...document.querySelectorAll({json.dumps(selector)})]
            .find(e => has(e) || [...e.querySelectorAll('*')].some(has));
        if (!el) return false;
        el.click(); return true; }})()""")
    assert clicked, f"no {selector} reading {text!r} on the page: {page.text()[:1500]}"


def test_an_expert_settles_a_conflict_in_the_adjudication_page_and_dedup_takes_it(
    label_studio, tmp_path
):
    """The dedup adjudication page shows the conflicting copies side by side with their
    captions and the question; the expert's click and Submit settle the group."""
    from test_dedup_adjudicate import _ingest_and_dedup, plant_conflicts, wb

    from workbench.labelstudio.adjudication_project import DISTINCT_CHOICE

    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    label_studio.attach(ws)
    plant_conflicts(label_studio.images_dir("pages-dedup"))
    _ingest_and_dedup(ws, label_studio.files_root / "pages-dedup")
    r = wb(ws, "dedup", "adjudicate", "--json")
    assert r.exit_code == 0, r.output
    pid = json.loads(r.stdout)["project_id"]
    task = next(
        t
        for t in label_studio.client.tasks.list(project=pid, fields="all")
        if "elephant_ivory" in t.data["caption_0"] + t.data["caption_1"]
    )
    creds = json.loads((label_studio.workspace.services_dir / ls_server.AUTH_NAME).read_text())

    with Browser(tmp_path) as page:
        _login(page, label_studio.url, creds["username"], creds["password"])
        page.goto(f"{label_studio.url}/projects/{pid}/data?task={task.id}")
        try:
            page.wait_for("document.body.innerText.includes('Which label is right')", timeout=120)
            photos = page.wait_for(
                f"(() => {{ const p = {PHOTOS_JS}.filter(i => i[0] > 1); "
                "return p.length >= 2 ? p : null; })()",
                timeout=60,
            )
        finally:
            page.screenshot(ARTIFACTS / "labelstudio-dedup-adjudicate.png")
        text = page.text()
        assert task.data["caption_0"] in text and task.data["caption_1"] in text
        assert "non_wildlife" in text and DISTINCT_CHOICE in text
        # the two copies, full size, next to each other (same row, different columns)
        # (the unused slots hold a 1x1 blank each)
        # (captions of different lengths wrap differently: same row = overlapping heights)
        (w0, top0, left0, h0), (w1, top1, left1, h1) = sorted(photos, key=lambda p: p[2])
        assert (w0, w1) == (96, 96) and left1 > left0 + 100
        assert top1 < top0 + h0 and top0 < top1 + h1
        # the question and its answers come before the photos: on screen without scrolling
        assert page.evaluate(QUESTION_TOP_JS) < min(top0, top1)

        _click_text(page, "label", "non_wildlife")
        _click_text(page, "button", "Submit")
        page.wait_for("document.body.innerText.includes('Update')", timeout=60)

    r = wb(ws, "dedup", "adjudicate", "--pull")
    assert r.exit_code == 0, r.output
    assert "settled as label 'non_wildlife' by" in r.output
    assert "1 group(s) settled now, 0 unchanged, 1 waiting" in r.output
