"""`wb field token add|revoke|list`, `wb field report` against a hand-made set of
verdicts, `wb serve --field`, and the order `wb push` gives field photos."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from workbench.catalog import ImageRecord

CLASSES = ["cat", "dog"]


def invoke(ws, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args])


# ---- tokens --------------------------------------------------------------------------------
def test_token_add_prints_the_token_once_and_stores_only_its_hash(workspace_factory):
    from workbench.field.tokens import device_for_token, token_hash

    ws = workspace_factory(classes=CLASSES)
    res = invoke(ws, "field", "token", "add", "officer-7")
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    assert len(token) >= 40 and "not shown again" in res.stderr
    with ws.open_catalog() as catalog:
        assert device_for_token(catalog, token).name == "officer-7"
        stored = catalog.db.execute("SELECT token_sha256 FROM field_devices").fetchall()
    assert [r[0] for r in stored] == [token_hash(token)]
    assert token.encode() not in ws.catalog_path.read_bytes()

    listed = invoke(ws, "field", "token", "list", "--json")
    assert listed.exit_code == 0
    (device,) = json.loads(listed.stdout)
    assert device["name"] == "officer-7" and device["active"] and token not in listed.stdout


def test_token_add_twice_fails_and_says_to_revoke(workspace_factory):
    ws = workspace_factory(classes=CLASSES)
    invoke(ws, "field", "token", "add", "officer-7")
    res = invoke(ws, "field", "token", "add", "officer-7")
    assert res.exit_code == 1
    assert "already has a token" in res.output and "wb field token revoke officer-7" in res.output


def test_a_bad_device_name_is_refused(workspace_factory):
    res = invoke(workspace_factory(classes=CLASSES), "field", "token", "add", "../x")
    assert res.exit_code == 1 and "is not usable" in res.output


def test_revoke_refuses_the_token_and_a_new_one_can_be_made(workspace_factory):
    from workbench.field.tokens import device_for_token

    ws = workspace_factory(classes=CLASSES)
    old = invoke(ws, "field", "token", "add", "phone").stdout.strip()
    res = invoke(ws, "field", "token", "revoke", "phone")
    assert res.exit_code == 0 and "token revoked" in res.output
    new = invoke(ws, "field", "token", "add", "phone").stdout.strip()
    with ws.open_catalog() as catalog:
        assert device_for_token(catalog, old) is None
        assert device_for_token(catalog, new).name == "phone"
    table = invoke(ws, "field", "token", "list")
    assert "phone" in table.output and old not in table.output


def test_revoking_an_unknown_device_fails_with_the_known_ones(workspace_factory):
    ws = workspace_factory(classes=CLASSES)
    invoke(ws, "field", "token", "add", "phone")
    res = invoke(ws, "field", "token", "revoke", "tablet")
    assert res.exit_code == 1 and "no device 'tablet'" in res.output and "phone" in res.output


# ---- the report --------------------------------------------------------------------------
# (answer, [(device, verdict, label), ...], day): the latest verdict of any device counts
VERDICTS = [
    ("cat", [("a", "correct", None)], "2026-11-01"),
    ("cat", [("a", "correct", None)], "2026-11-02"),
    ("cat", [("a", "wrong", "dog")], "2026-11-03"),
    ("dog", [("a", "correct", None)], "2026-11-04"),
    ("dog", [("a", "wrong", "cat")], "2026-11-05"),
    ("background", [("a", "wrong", "cat")], "2026-11-06"),
    ("dog", [("a", "wrong", None)], "2026-11-07"),
    ("cat", [], "2026-11-08"),
    ("dog", [("a", "wrong", "cat"), ("b", "correct", None)], "2026-11-09"),
]


@pytest.fixture
def verdict_ws(workspace_factory, monkeypatch):
    import workbench.catalog.field as field_tables

    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as catalog:
        for n, (answer, verdicts, day) in enumerate(VERDICTS):
            monkeypatch.setattr(field_tables, "now_iso", lambda d=day: f"{d}T12:00:00.000+00:00")
            image = ImageRecord(id=None, path=str(ws.root / f"p{n}.jpg"), width=10, height=10)
            photo = catalog.record_field_photo(image, "a", "v001", [], [], answer, None, 0.1, False)
            for device, verdict, label in verdicts:
                catalog.record_field_feedback(photo.id, device, verdict, label)
    return ws


def test_report_json_has_the_study_numbers_for_the_hand_made_verdicts(verdict_ws):
    res = invoke(verdict_ws, "field", "report", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["photos"] == 9 and report["with_feedback"] == 8
    assert report["overall"] == {"correct": 4, "total": 8, "accuracy": 0.5}
    assert report["per_class"] == {
        "cat": {"correct": 2, "total": 4, "accuracy": 0.5},
        "dog": {"correct": 2, "total": 3, "accuracy": 0.6667},
        "unknown": {"correct": 0, "total": 1, "accuracy": 0.0},
    }
    assert report["wrong_as"] == {"dog": 2, "background": 1, "cat": 1}
    assert list(report["wrong_as"]) == ["dog", "background", "cat"]


def test_report_for_a_period_counts_only_its_photos(verdict_ws):
    res = invoke(
        verdict_ws, "field", "report", "--since", "2026-11-03", "--until", "2026-11-05", "--json"
    )
    report = json.loads(res.stdout)
    assert report["photos"] == 3
    assert report["overall"] == {"correct": 1, "total": 3, "accuracy": 0.3333}
    assert report["wrong_as"] == {"cat": 1, "dog": 1}


def test_report_prints_the_two_tables_and_saves_the_chart(verdict_ws, tmp_path):
    png = tmp_path / "out" / "field.png"
    res = invoke(verdict_ws, "field", "report", "--png", str(png))
    assert res.exit_code == 0, res.output
    assert "9 field photos, 8 with a verdict" in res.output
    assert "overall" in res.output and "50.0%" in res.output and "66.7%" in res.output
    assert "wrong answers: the class given" in res.output and "background" in res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_with_a_bad_date_fails_clearly(verdict_ws):
    res = invoke(verdict_ws, "field", "report", "--since", "last week")
    assert res.exit_code == 1 and "is not a date" in res.output


def test_report_without_photos_says_how_verdicts_arrive(workspace_factory):
    res = invoke(workspace_factory(classes=CLASSES), "field", "report")
    assert res.exit_code == 0 and "0 field photos" in res.output and "/app" in res.output


# ---- wb serve --field ------------------------------------------------------------------------
def test_serve_field_mounts_the_app_on_the_served_model(workspace_factory, monkeypatch):
    import workbench.backend
    from workbench.backend.tiny_models import register_untrained_model

    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as catalog:
        register_untrained_model(ws, catalog, CLASSES, promote=True)
    calls = []
    monkeypatch.setattr(workbench.backend, "run", lambda app, **kw: calls.append((app, kw)))
    res = invoke(ws, "serve", "--field", "--port", "9393")
    assert res.exit_code == 0, res.output
    assert "field app: http://127.0.0.1:9393/app" in res.output
    assert "no device has a field token yet" in res.output
    ((app, _),) = calls
    client = TestClient(app)
    assert client.get("/app").status_code == 200
    assert client.post("/v1/detect").status_code == 401
    plain = invoke(ws, "serve", "--port", "9394")
    assert TestClient(calls[-1][0]).get("/app").status_code == 404 and plain.exit_code == 0


# ---- the queue -----------------------------------------------------------------------------
def test_field_queue_puts_wrong_answers_first_then_the_unsure_ones(workspace_factory):
    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as catalog:

        def photo(n, uncertainty):
            image = ImageRecord(id=None, path=str(ws.root / f"q{n}.jpg"), width=10, height=10)
            return catalog.record_field_photo(
                image, "a", "v001", [], [], "cat", 0.9, uncertainty, uncertainty >= 0.5
            )

        sure_right = photo(0, 0.1)
        unsure = photo(1, 0.7)
        more_unsure = photo(2, 0.9)
        wrong_early = photo(3, 0.1)
        wrong_late = photo(4, 0.2)
        annotated = photo(5, 0.95)
        catalog.record_field_feedback(sure_right.id, "a", "correct")
        catalog.record_field_feedback(wrong_early.id, "a", "wrong", "dog")
        catalog.record_field_feedback(wrong_late.id, "a", "wrong", "dog")
        catalog.update_image(annotated.image_id, annotated=True)
        order = catalog.field_queue_images()
    assert order == [
        wrong_late.image_id,
        wrong_early.image_id,
        more_unsure.image_id,
        unsure.image_id,
    ]


def test_push_policy_scores_wrong_and_unsure_photos_below_every_other_task(workspace_factory):
    """``field_photos_first`` (called by every `wb push`) writes front scores through
    ``write_scores`` and turns uncertainty sampling on for the version."""
    from types import SimpleNamespace

    from ls_fakes import RecordingClient

    from workbench.labelstudio.client import Connection
    from workbench.labelstudio.ordering import UNCERTAINTY_SAMPLING, field_photos_first
    from workbench.labelstudio.project import Project

    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as catalog:
        photos = []
        for n, uncertainty in enumerate([0.1, 0.8, 0.1]):
            image = ImageRecord(id=None, path=str(ws.root / f"s{n}.jpg"), width=10, height=10)
            photos.append(
                catalog.record_field_photo(
                    image, "a", "v001", [], [], "cat", 0.9, uncertainty, uncertainty >= 0.5
                )
            )
        other = catalog.add_image(ImageRecord(id=None, path=str(ws.root / "o.jpg")))
        catalog.record_field_feedback(photos[2].id, "a", "wrong", "dog")
        ids = [p.image_id for p in photos] + [other]
        catalog.record_ls_tasks(7, [(i, 100 + i, "v001") for i in ids])
        client = RecordingClient(
            [
                SimpleNamespace(id=500 + i, task=100 + i, model_version="v001", score=0.4)
                for i in ids
            ]
            + [SimpleNamespace(id=999, task=100 + other, model_version="v001", score=-3.0)]
        )
        project = Project(client, Connection("http://ls.test", "t"), 7, "species", ws.taxonomy)
        done = field_photos_first(project, catalog, "v001")
    wrong, unsure = photos[2].image_id, photos[1].image_id
    assert done.image_ids == [wrong, unsure]
    # below the lowest other score (-3.0), the wrong answer first
    assert client.updated == {500 + wrong: {"score": -5.0}, 500 + unsure: {"score": -4.0}}
    assert client.project_updates == [{"model_version": "v001", "sampling": UNCERTAINTY_SAMPLING}]
