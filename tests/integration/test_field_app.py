"""The field app end to end: headless Chromium on a phone-sized window opens /app of a
real `wb serve --field` service (uvicorn on 127.0.0.1), enters its token, uploads a real
photo through the file input, sees the boxes drawn, taps "Wrong", picks the right class
and sends it. The verdict is then in the catalog and, after `wb push` against the real
Label Studio, that photo's task is the first one Label Studio's queue hands out."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import torch
from cdp import CHROMIUM, Browser
from click.testing import CliRunner
from PIL import Image

from workbench.catalog import ImageRecord
from workbench.labelstudio.tasks import IMAGE_ID_FIELD

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CLASSES = ["kangaroo", "koala"]


def draw(path: Path, shade: int) -> Path:
    img = Image.new("RGB", (160, 120), (shade, 120, 130))
    img.paste((40, 40, 200), (30, 20, 110, 90))
    img.save(path)
    return path


@pytest.fixture
def field_service(label_studio, kangaroo_dir, tmp_path):
    """A workspace inside Label Studio's served folder (field photos are stored in the
    workspace, so Label Studio must serve it), three ordinary images the model is very
    unsure of (they would come first without the field photo), a promoted tiny model,
    a device token, and the service with the field app on a free port."""
    from workbench.backend import BackendSettings, ModelHolder, create_app, running
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.field import FieldSettings, field_router
    from workbench.field.tokens import add_device
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    torch.set_num_threads(1)
    folder = label_studio.images_dir(f"field-{uuid.uuid4().hex[:8]}")
    ws = Workspace.create(folder / "ws", Taxonomy.flat(CLASSES))
    label_studio.attach(ws)
    (folder / "shop").mkdir()
    with ws.open_catalog() as catalog:
        version = register_untrained_model(ws, catalog, CLASSES, promote=True)
        ids = []
        for i in range(3):
            p = draw(folder / "shop" / f"listing {i}.png", 90 + 40 * i)
            ids.append(catalog.add_image(ImageRecord(id=None, path=str(p), width=160, height=120)))
        box = {"label": "kangaroo", "x1": 30, "y1": 20, "x2": 110, "y2": 90, "score": 0.35}
        catalog.store_predictions(version, {i: [dict(box, probs={})] for i in ids})
        catalog.store_priorities(version, [(i, 0.95, {}) for i in ids])
        token = add_device(catalog, "officer-1")
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=1)
    app = create_app(holder, ws.open_catalog, BackendSettings(taxonomy=ws.taxonomy))
    app.include_router(
        field_router(
            holder,
            ws.open_catalog,
            FieldSettings(photos_dir=ws.field_photos_dir, taxonomy=ws.taxonomy),
        )
    )
    photo = tmp_path / "phone" / "IMG_0042.jpg"
    photo.parent.mkdir()
    shutil.copy(sorted((kangaroo_dir / "images").glob("*.jpg"))[0], photo)
    with running(app) as url:
        yield {"ws": ws, "url": url, "token": token, "photo": photo, "others": ids}


def test_a_wrong_answer_sent_from_the_phone_page_is_first_in_label_studio(
    field_service, label_studio, tmp_path
):
    from workbench.cli import cli
    from workbench.labelstudio import connect
    from workbench.workspace import Workspace

    ws, url = field_service["ws"], field_service["url"]
    with Browser(tmp_path, width=390, height=844) as page:  # a phone's width
        page.goto(f"{url}/app")
        page.wait_for("document.getElementById('msg').textContent.includes('token')")
        page.evaluate(
            f"document.getElementById('token').value = {json.dumps(field_service['token'])};"
            "document.getElementById('save-token').click(); true"
        )
        page.wait_for("document.getElementById('msg').textContent.includes('Token saved')")
        assert page.evaluate("document.getElementById('cls').options.length") == 4

        root = page.call("DOM.getDocument")["root"]["nodeId"]
        node = page.call("DOM.querySelector", nodeId=root, selector="#photo")["nodeId"]
        page.call("DOM.setFileInputFiles", files=[str(field_service["photo"])], nodeId=node)
        boxes = page.wait_for("Number(document.getElementById('view').dataset.boxes || 0)")
        assert boxes >= 1
        answer = page.evaluate("window.wbField.photo.answer")
        assert page.evaluate("document.getElementById('answer').textContent").startswith(
            f"Answer: {answer}"
        )
        # the canvas really holds the photo and the boxes (not a blank grey fill)
        distinct = page.evaluate(
            "(() => { const c = document.getElementById('view');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " const s = new Set(); for (let i = 0; i < d.length; i += 397) s.add(d[i]);"
            " return s.size; })()"
        )
        assert distinct > 20
        right_class = next(c for c in CLASSES if c != answer)

        page.evaluate("document.getElementById('wrong').click(); true")
        page.wait_for("!document.getElementById('fix').hidden")
        page.evaluate(
            f"document.getElementById('cls').value = {json.dumps(right_class)};"
            "document.getElementById('note').value = 'seen at the market';"
            "document.getElementById('send').click(); true"
        )
        page.wait_for("document.getElementById('msg').textContent.includes('Saved: wrong')")
        page.screenshot(ARTIFACTS / "field-app-wrong-sent.png")
        photo_id = page.evaluate("window.wbField.photo.photo_id")

    with ws.open_catalog() as catalog:
        (verdict,) = catalog.field_feedback(photo_id)
        photo = catalog.field_photo(photo_id)
        image = catalog.get_image(photo.image_id)
    assert (verdict.device, verdict.verdict, verdict.label) == ("officer-1", "wrong", right_class)
    assert verdict.note == "seen at the market"
    assert image.source_format == "field" and Path(image.path).is_relative_to(ws.root)
    assert image.label == right_class

    res = CliRunner().invoke(cli, ["--workspace", str(ws.root), "push", "--new-project"])
    assert res.exit_code == 0, res.output
    assert "1 field photos (marked wrong, or the model was unsure) first" in res.output
    ws = Workspace.open(ws.root)  # `wb push` saved the new project's id
    client, _ = connect(ws)
    task = client.next_task(ws.project_id())
    assert task is not None and task["data"][IMAGE_ID_FIELD] == photo.image_id


def test_the_page_says_when_the_token_is_wrong_and_when_the_service_is_down(
    workspace_factory, tmp_path
):
    """No Label Studio here: a wrong token, then the service stopped under the open page."""
    from workbench.backend import BackendSettings, ModelHolder, create_app, running
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.field import FieldSettings, field_router
    from workbench.field.tokens import add_device

    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    torch.set_num_threads(1)
    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as catalog:
        register_untrained_model(ws, catalog, CLASSES, promote=True)
        token = add_device(catalog, "officer-2")
    holder = ModelHolder.for_workspace(ws, ws.open_catalog)
    app = create_app(holder, ws.open_catalog, BackendSettings(taxonomy=ws.taxonomy))
    app.include_router(
        field_router(holder, ws.open_catalog, FieldSettings(photos_dir=ws.field_photos_dir))
    )
    photo = draw(tmp_path / "shot.png", 150)
    msg = "document.getElementById('msg').textContent"
    with Browser(tmp_path, width=390, height=844) as page:
        with running(app) as url:
            page.goto(f"{url}/app")
            page.wait_for(f"{msg}.includes('token')")
            page.evaluate(
                "document.getElementById('token').value = 'not-the-token';"
                "document.getElementById('save-token').click(); true"
            )
            refused = page.wait_for(f"{msg}.includes('token was refused') && {msg}")
            assert "unknown or revoked" in refused
            assert page.evaluate("!document.getElementById('token-form').hidden")
            page.evaluate(
                f"document.getElementById('token').value = {json.dumps(token)};"
                "document.getElementById('save-token').click(); true"
            )
            page.wait_for(f"{msg}.includes('Token saved')")
        # the service is gone; the page is still open on the phone
        root = page.call("DOM.getDocument")["root"]["nodeId"]
        node = page.call("DOM.querySelector", nodeId=root, selector="#photo")["nodeId"]
        page.call("DOM.setFileInputFiles", files=[str(photo)], nodeId=node)
        down = page.wait_for(f"{msg}.includes('cannot be reached') && {msg}")
        assert "wb serve --field" in down
        assert page.evaluate("document.getElementById('msg').className") == "error"
    with ws.open_catalog() as catalog:
        assert catalog.field_photos() == []
