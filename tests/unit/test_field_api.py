"""The field app's API through FastAPI's TestClient, with an untrained tiny model: tokens,
every bad upload the issue lists (nothing stored), GPS removed, feedback history."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

CLASSES = ["cat", "dog"]
GPS_IFD = 0x8825
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def field_ws(module_tmp):
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.field.tokens import add_device
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(1)
    ws = Workspace.create(module_tmp.mktemp("field") / "ws", Taxonomy.flat(CLASSES))
    with ws.open_catalog() as catalog:
        version = register_untrained_model(ws, catalog, CLASSES, promote=True)
        tokens = {name: add_device(catalog, name) for name in ("officer-1", "officer-2", "gone")}
        from workbench.field.tokens import revoke_device

        revoke_device(catalog, "gone")
    return {"ws": ws, "version": version, "tokens": tokens}


def make_client(ws, keep_location=False, **settings_kw) -> TestClient:
    from workbench.backend import BackendSettings, ModelHolder, create_app
    from workbench.field import FieldSettings, field_router

    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0)
    app = create_app(holder, ws.open_catalog, BackendSettings(taxonomy=ws.taxonomy, **settings_kw))
    app.include_router(
        field_router(
            holder,
            ws.open_catalog,
            FieldSettings(
                photos_dir=ws.field_photos_dir, taxonomy=ws.taxonomy, keep_location=keep_location
            ),
        )
    )
    return TestClient(app)


@pytest.fixture(scope="module")
def client(field_ws):
    return make_client(field_ws["ws"])


def bearer(field_ws, name="officer-1") -> dict:
    return {"Authorization": f"Bearer {field_ws['tokens'][name]}"}


def photo_bytes(fmt="JPEG", size=(120, 90), gps=False, orientation=None) -> bytes:
    img = Image.new("RGB", size, (120, 120, 120))
    img.paste((200, 30, 30), (10, 10, 60, 60))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make: kept
    if orientation:
        exif[ORIENTATION] = orientation
    if gps:
        ifd = exif.get_ifd(GPS_IFD)
        ifd[1], ifd[2] = "N", (48.0, 51.0, 24.0)
        ifd[3], ifd[4] = "E", (2.0, 21.0, 3.0)
    buf = io.BytesIO()
    img.save(buf, fmt, exif=exif.tobytes())
    return buf.getvalue()


def huge_png(width=30000, height=30000) -> bytes:
    """A valid PNG header claiming 30000x30000 pixels (the file itself is tiny)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def stored_state(ws) -> tuple[list[str], int, int]:
    with ws.open_catalog() as catalog:
        photos = len(catalog.field_photos())
        images = len(catalog.images())
    files = sorted(p.name for p in ws.field_photos_dir.rglob("*"))
    return files, images, photos


def upload(client, field_ws, data: bytes, name="photo.jpg", who="officer-1"):
    return client.post(
        "/v1/detect", files={"image": (name, data, "image/jpeg")}, headers=bearer(field_ws, who)
    )


# ---- access -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers, says",
    [
        ({}, "no token"),
        ({"Authorization": "Bearer not-a-token"}, "token refused"),
        ({"Authorization": "Basic b2ZmaWNlcjpwdw=="}, "no token"),
    ],
    ids=["missing", "wrong", "basic"],
)
def test_detect_without_a_valid_token_is_401_json_and_stores_nothing(
    client, field_ws, headers, says
):
    before = stored_state(field_ws["ws"])
    r = client.post("/v1/detect", files={"image": ("a.jpg", photo_bytes())}, headers=headers)
    assert r.status_code == 401
    assert says in r.json()["error"] and "wb field token add" in r.json()["error"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert stored_state(field_ws["ws"]) == before


def test_a_revoked_token_is_refused(client, field_ws):
    r = client.get("/v1/classes", headers=bearer(field_ws, "gone"))
    assert r.status_code == 401 and "revoked" in r.json()["error"]


def test_feedback_needs_a_token_too(client):
    r = client.post("/v1/feedback", json={"photo_id": 1, "verdict": "correct"})
    assert r.status_code == 401


# ---- bad uploads: 4xx JSON, nothing stored ------------------------------------------------
def truncated_jpeg() -> bytes:
    data = photo_bytes(size=(300, 200))
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data, status, says",
    [
        (b"this is a text file, not a photo\n" * 20, 415, "not an image"),
        (b"", 422, "empty"),
        (None, 422, "truncated"),
        (huge_png(), 413, "decompression bomb"),
    ],
    ids=["not-an-image", "zero-bytes", "truncated", "30000x30000-png"],
)
def test_a_bad_upload_is_refused_with_json_and_nothing_is_stored(
    client, field_ws, data, status, says
):
    before = stored_state(field_ws["ws"])
    r = upload(client, field_ws, truncated_jpeg() if data is None else data)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]
    assert stored_state(field_ws["ws"]) == before


def test_a_50_mb_body_is_413_and_nothing_is_stored(client, field_ws):
    before = stored_state(field_ws["ws"])
    big = b"\xff\xd8" + b"\0" * (50 * 1024 * 1024)
    r = upload(client, field_ws, big)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    assert stored_state(field_ws["ws"]) == before


def test_an_upload_that_is_not_multipart_or_lacks_the_image_field_is_refused(client, field_ws):
    before = stored_state(field_ws["ws"])
    raw = client.post(
        "/v1/detect",
        content=photo_bytes(),
        headers={**bearer(field_ws), "Content-Type": "image/jpeg"},
    )
    assert raw.status_code == 415 and "multipart/form-data" in raw.json()["error"]
    other = client.post(
        "/v1/detect", files={"picture": ("a.jpg", photo_bytes())}, headers=bearer(field_ws)
    )
    assert other.status_code == 422 and "no field 'image'" in other.json()["error"]
    assert stored_state(field_ws["ws"]) == before


# ---- a real photo ---------------------------------------------------------------------------
def test_a_photo_is_answered_stored_upright_without_gps_and_cataloged(client, field_ws):
    ws = field_ws["ws"]
    r = upload(client, field_ws, photo_bytes(gps=True, orientation=6), name="IMG_0001.jpg")
    assert r.status_code == 200, r.text
    body = r.json()
    # EXIF orientation 6: the upright photo is 90 wide, 120 high; boxes are in that frame
    assert (body["width"], body["height"]) == (90, 120)
    assert body["model_version"] == field_ws["version"]
    assert body["location_removed"] is True
    assert body["detections"], "the untrained tiny model scores boxes above the 0.3 floor"
    for det in body["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= 90 and 0 <= y1 <= y2 <= 120 and det["label"] in CLASSES
    top = max(body["detections"], key=lambda d: d["score"])
    assert body["answer"] == top["label"]

    with ws.open_catalog() as catalog:
        photo = catalog.field_photo(body["photo_id"])
        image = catalog.get_image(photo.image_id)
        stored_boxes = catalog.predictions(field_ws["version"], [image.id])[image.id]
    assert photo.device == "officer-1" and photo.answer == body["answer"]
    assert image.source_format == "field" and image.source == "field"
    assert (image.width, image.height) == (90, 120) and image.status == "active"
    assert stored_boxes and "probs" in stored_boxes[0]
    path = ws.field_photos_dir / f"{image.sha256}.jpg"
    assert image.path == str(path.resolve())
    assert path.parent.is_relative_to(ws.root)
    with Image.open(path) as saved:
        exif = saved.getexif()
        assert saved.size == (90, 120)
        assert GPS_IFD not in exif and not exif.get_ifd(GPS_IFD)
        assert ORIENTATION not in exif  # applied to the pixels
        assert exif.get(0x010F) == "PhoneMaker"


def test_the_same_photo_twice_is_one_file_and_one_image_but_two_uploads(client, field_ws):
    ws = field_ws["ws"]
    data = photo_bytes(size=(100, 80))
    first, second = upload(client, field_ws, data).json(), upload(client, field_ws, data).json()
    assert first["photo_id"] != second["photo_id"]
    with ws.open_catalog() as catalog:
        a, b = catalog.field_photo(first["photo_id"]), catalog.field_photo(second["photo_id"])
        sha = catalog.get_image(a.image_id).sha256
    assert a.image_id == b.image_id
    assert len(list(ws.field_photos_dir.glob(f"{sha}*"))) == 1


def test_a_workspace_that_opts_in_keeps_the_gps_position(field_ws):
    client = make_client(field_ws["ws"], keep_location=True)
    r = upload(client, field_ws, photo_bytes(size=(110, 70), gps=True))
    assert r.status_code == 200 and r.json()["location_removed"] is False
    with field_ws["ws"].open_catalog() as catalog:
        image = catalog.get_image(catalog.field_photo(r.json()["photo_id"]).image_id)
    with Image.open(image.path) as saved:
        assert saved.getexif().get_ifd(GPS_IFD)[1] == "N"


def test_a_png_photo_is_stored_as_png(client, field_ws):
    r = upload(client, field_ws, photo_bytes("PNG", size=(64, 64)), name="shot.png")
    assert r.status_code == 200
    with field_ws["ws"].open_catalog() as catalog:
        image = catalog.get_image(catalog.field_photo(r.json()["photo_id"]).image_id)
    assert image.path.endswith(".png")


# ---- feedback -----------------------------------------------------------------------------
def test_feedback_for_an_unknown_photo_is_404(client, field_ws):
    r = client.post(
        "/v1/feedback", json={"photo_id": 987654, "verdict": "wrong"}, headers=bearer(field_ws)
    )
    assert r.status_code == 404 and "no photo 987654" in r.json()["error"]


@pytest.mark.parametrize(
    "payload, says",
    [
        ({"photo_id": 1, "verdict": "maybe"}, "invalid request"),
        ({"photo_id": 1, "verdict": "wrong", "label": "unicorn"}, "unknown class 'unicorn'"),
        ({"photo_id": 1, "verdict": "wrong", "extra": 1}, "invalid request"),
    ],
)
def test_bad_feedback_is_422(client, field_ws, payload, says):
    r = client.post("/v1/feedback", json=payload, headers=bearer(field_ws))
    assert r.status_code == 422 and says in r.json()["error"]


def test_feedback_is_idempotent_per_photo_and_device_and_keeps_history(client, field_ws):
    ws = field_ws["ws"]
    photo = upload(client, field_ws, photo_bytes(size=(90, 90))).json()
    wrong_class = "dog" if photo["answer"] == "cat" else "cat"

    def send(who, **body):
        r = client.post(
            "/v1/feedback",
            json={"photo_id": photo["photo_id"], **body},
            headers=bearer(field_ws, who),
        )
        assert r.status_code == 200, r.text
        return r.json()

    first = send("officer-1", verdict="wrong", label=wrong_class)
    again = send("officer-1", verdict="wrong", label=wrong_class)
    assert (first["changed"], first["history"]) == (True, 1)
    assert (again["changed"], again["history"]) == (False, 1)
    changed = send("officer-1", verdict="correct")
    assert changed["verdict"] == "correct" and changed["history"] == 2
    other = send("officer-2", verdict="wrong", label=wrong_class, note="the label is on the box")
    assert other["history"] == 1 and other["device"] == "officer-2"

    with ws.open_catalog() as catalog:
        history = catalog.field_feedback(photo["photo_id"])
        latest = catalog.latest_field_verdicts([photo["photo_id"]])[photo["photo_id"]]
        image = catalog.get_image(catalog.field_photo(photo["photo_id"]).image_id)
    assert [(f.device, f.verdict) for f in history] == [
        ("officer-1", "wrong"),
        ("officer-1", "correct"),
        ("officer-2", "wrong"),
    ]
    assert latest.device == "officer-2" and latest.note == "the label is on the box"
    assert image.label == wrong_class  # the latest verdict names the image's class


def test_a_correct_verdict_naming_another_class_is_refused(client, field_ws):
    photo = upload(client, field_ws, photo_bytes(size=(80, 100))).json()
    other = "dog" if photo["answer"] == "cat" else "cat"
    r = client.post(
        "/v1/feedback",
        json={"photo_id": photo["photo_id"], "verdict": "correct", "label": other},
        headers=bearer(field_ws),
    )
    assert r.status_code == 422 and "send verdict 'wrong'" in r.json()["error"]


# ---- the page and the classes ----------------------------------------------------------------
def test_the_classes_are_the_models_and_background(client, field_ws):
    r = client.get("/v1/classes", headers=bearer(field_ws))
    assert r.json() == {"model_version": field_ws["version"], "classes": [*CLASSES, "background"]}


def test_the_app_page_is_one_self_contained_file(client):
    r = client.get("/app")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert 'capture="environment"' in page and 'accept="image/*"' in page
    assert 'name="viewport"' in page
    for external in ('src="http', 'href="http', "src='http", "@import", "<link"):
        assert external not in page
    assert "cannot be reached" in page and "token was refused" in page


def test_no_model_is_503_and_stores_nothing(tmp_path, field_ws):
    from workbench.field.tokens import add_device
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    ws = Workspace.create(tmp_path / "empty", Taxonomy.flat(CLASSES))
    with ws.open_catalog() as catalog:
        token = add_device(catalog, "phone")
    r = make_client(ws).post(
        "/v1/detect",
        files={"image": ("a.jpg", photo_bytes())},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 503 and "no promoted model" in r.json()["error"]
    assert stored_state(ws) == ([], 0, 0)


def test_photos_share_the_backends_predict_gate_and_get_503_when_it_is_full(field_ws):
    """/v1/detect is bounded by the same gate as /predict (one bound on requests holding
    decoded images): with every slot taken and no room to wait, a photo gets 503 with
    Retry-After, and nothing is stored."""
    from workbench.backend import BackendSettings, ModelHolder, create_app
    from workbench.field import FieldSettings, field_router

    ws = field_ws["ws"]
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0)
    settings = BackendSettings(taxonomy=ws.taxonomy, predict_slots=1, predict_queue=0)
    app = create_app(holder, ws.open_catalog, settings)
    gate = app.state.predict_gate
    field = FieldSettings(photos_dir=ws.field_photos_dir, taxonomy=ws.taxonomy)
    app.include_router(field_router(holder, ws.open_catalog, field, gate=gate))
    client = TestClient(app)
    before = stored_state(ws)
    with gate.admit():  # a Label Studio batch holds the only slot
        res = upload(client, field_ws, photo_bytes())
    assert res.status_code == 503 and res.headers["retry-after"] == "5"
    assert "busy" in res.json()["error"]
    assert stored_state(ws) == before
    assert upload(client, field_ws, photo_bytes()).status_code == 200  # the slot is free again
