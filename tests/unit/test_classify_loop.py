"""The classifier in the loop: its answers stored per image (`wb classify predict`), the
merged positive class, the disagreement signal of `wb prioritize`, and `wb serve`
refusing a classifier."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from prioritize_cases import VERSION, BrightnessModel, confident_and_unsure, register_model

from workbench.active.disagreement import (
    DisagreementConfig,
    classifier_claims,
    combine,
    score_disagreement,
)
from workbench.active.prioritize import product_classes
from workbench.catalog.records import ImageRecord
from workbench.classify import models
from workbench.classify.config import ClassifyConfig
from workbench.classify.dataset import catalog_images, class_members, class_names
from workbench.cli import cli
from workbench.detection.registry import Registry
from workbench.images import open_image

pytestmark = pytest.mark.unit
torch.set_num_threads(1)


# ---- catalog -------------------------------------------------------------------------


def _image(catalog, path, label=None):
    return catalog.add_image(ImageRecord(id=None, path=str(path), label=label))


def test_classifications_round_trip_and_a_second_store_replaces(workspace_factory, tmp_path):
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        a, b = _image(catalog, tmp_path / "a.jpg"), _image(catalog, tmp_path / "b.jpg")
        catalog.store_classifications("v002", {a: {"x": 0.2, "y": 0.8}, b: {"x": 0.6, "y": 0.4}})
        got = catalog.classifications("v002")
        assert sorted(got) == [a, b]
        assert (got[a].label, got[a].score, got[a].probs) == ("y", 0.8, {"x": 0.2, "y": 0.8})
        assert got[b].label == "x" and got[b].model_version == "v002"
        catalog.store_classifications("v002", {a: {"x": 0.9, "y": 0.1}})
        assert catalog.classifications("v002", [a])[a].label == "x"
        assert list(catalog.classifications("v002", [b, 999])) == [b]
        assert catalog.classifications("v003") == {}
        assert catalog.predictions("v002") == {}  # detections are another table


# ---- --positive A,B ------------------------------------------------------------------


def test_two_positive_classes_train_as_one_merged_class_against_other(workspace_factory):
    ws = workspace_factory()
    cfg = ClassifyConfig(positive=["elephant_ivory", "pangolin"], negatives=True)
    assert class_names(cfg, ws.taxonomy) == ["elephant_ivory+pangolin", "other"]
    with ws.open_catalog() as catalog:
        for label, n in (
            ("elephant_ivory", 4),
            ("pangolin_claw", 3),  # a category of the species named
            ("pangolin_raw_scale", 3),
            ("tiger_claw", 5),
            ("background", 2),
        ):
            for i in range(n):
                _image(catalog, f"/x/{label}/{i}.jpg", label)
        items = catalog_images(catalog, ws.taxonomy, cfg)
    counts = {c: sum(i.label == c for i in items) for c in class_names(cfg, ws.taxonomy)}
    assert counts == {"elephant_ivory+pangolin": 10, "other": 7}
    members = class_members(class_names(cfg, ws.taxonomy), cfg, ws.taxonomy)
    assert members == {"elephant_ivory+pangolin": ["elephant_ivory", "pangolin"], "other": []}


# ---- the disagreement score on hand-made cases ---------------------------------------


def box(label, score):
    return {"label": label, "score": score, "x1": 0, "y1": 0, "x2": 10, "y2": 10}


IVORY = {"elephant_ivory": frozenset({"elephant_ivory"})}  # binary ivory vs other


def test_classifier_sure_of_a_product_the_detector_does_not_find():
    d = score_disagreement([], {"elephant_ivory": 0.9, "other": 0.1}, IVORY)
    assert (d.score, d.kind, d.labels) == (0.9, "classifier_only", ("elephant_ivory",))
    weak = score_disagreement([box("elephant_ivory", 0.3)], {"elephant_ivory": 0.9}, IVORY)
    assert weak.kind == "classifier_only"  # a box below `confident` is no find


def test_detector_finds_a_product_the_classifier_is_sure_is_not_there():
    d = score_disagreement([box("elephant_ivory", 0.7)], {"elephant_ivory": 0.05}, IVORY)
    assert (d.score, d.kind, d.labels) == (0.7, "detector_only", ("elephant_ivory",))


def test_agreement_and_unsure_classifiers_score_zero():
    found = [box("elephant_ivory", 0.8)]
    assert score_disagreement(found, {"elephant_ivory": 0.95}, IVORY).score == 0.0
    # unsure either way (0.5): no claim to disagree with
    assert score_disagreement([], {"elephant_ivory": 0.5}, IVORY).score == 0.0
    assert score_disagreement(found, {"elephant_ivory": 0.5}, IVORY).score == 0.0


def test_a_product_outside_every_claim_is_no_disagreement():
    # ivory-vs-other says "other" and the detector finds a pangolin scale: consistent
    d = score_disagreement([box("pangolin_raw_scale", 0.9)], {"elephant_ivory": 0.02}, IVORY)
    assert d.score == 0.0 and d.kind is None


def test_a_category_classifier_meets_a_species_detector_at_species(workspace_factory):
    tax = workspace_factory().taxonomy
    classes = tax.classes("category")
    claims = classifier_claims(
        class_members(classes, ClassifyConfig(level="category"), tax),
        "species",
        tax,
        is_product=lambda x: bool(product_classes([x], tax)),
    )
    assert claims["elephant_ivory"] == frozenset({"elephant"})
    assert "non_wildlife" not in claims  # a look-alike claims no product
    # 0.5 + 0.4 over two elephant categories: sure of "elephant" together
    probs = {"elephant_ivory": 0.5, "elephant_skin": 0.4, "non_wildlife": 0.1}
    d = score_disagreement([box("tiger", 0.9)], probs, claims)
    assert d.kind == "classifier_only" and d.labels == ("elephant",)
    assert d.score == pytest.approx(0.9)
    assert score_disagreement([box("elephant", 0.9)], probs, claims).score == 0.0
    # sure of the look-alike, and the detector finds nothing: no claim, no disagreement
    assert score_disagreement([], {"non_wildlife": 0.99}, claims).score == 0.0


def test_a_merged_positive_class_claims_each_of_its_labels(workspace_factory):
    tax = workspace_factory().taxonomy
    cfg = ClassifyConfig(positive=["elephant_ivory", "pangolin"])
    claims = classifier_claims(
        class_members(class_names(cfg, tax), cfg, tax),
        "category",
        tax,
        is_product=lambda x: bool(product_classes([x], tax)),
    )
    assert claims["elephant_ivory+pangolin"] >= {"elephant_ivory", "pangolin_claw"}
    assert "other" not in claims
    probs = {"elephant_ivory+pangolin": 0.95, "other": 0.05}
    assert score_disagreement([box("pangolin_claw", 0.6)], probs, claims).score == 0.0
    assert score_disagreement([box("tiger_claw", 0.6)], probs, claims).kind == "classifier_only"


def test_signals_combine_as_a_noisy_or():
    assert combine(0.4, 0.9, "uncertainty", 1.0) == 0.4
    assert combine(0.4, 0.9, "disagreement", 1.0) == 0.9
    assert combine(0.4, None, "disagreement", 1.0) == 0.0
    assert combine(0.4, 0.5, "uncertainty+disagreement", 1.0) == pytest.approx(1 - 0.6 * 0.5)
    with pytest.raises(ValueError, match="signal"):
        combine(0.4, 0.5, "hunch", 1.0)
    with pytest.raises(ValueError, match="sure"):
        DisagreementConfig(sure=0.4)


# ---- wb classify predict ------------------------------------------------------------


def _tiny_classifier(ws, catalog, tmp_path) -> str:
    """A registered, promoted, untrained EfficientNet-Lite0 classifier at 32 px."""
    cfg = ClassifyConfig(positive=["elephant_ivory"], image_size=32)
    net = models.build_classifier(cfg.backbone, 2, pretrained=False)
    weights = tmp_path / "w.pt"
    torch.save(net.state_dict(), weights)
    registry = Registry.of(ws, catalog)
    mv = registry.register(
        weights, cfg.to_dict(), class_names(cfg, ws.taxonomy), "category", {}, {}, task="classify"
    )
    registry.promote(mv.version)
    return mv.version


def _photos(tmp_path, catalog, n):
    ids = []
    for i in range(n):
        path = tmp_path / "img" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (40, 30), (20 * i, 100, 50)).save(path)
        ids.append(_image(catalog, path.resolve(), "elephant_ivory" if i % 2 else None))
    return ids


def test_predict_stores_probabilities_and_a_rerun_does_only_what_is_missing(
    workspace_factory, tmp_path
):
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        version = _tiny_classifier(ws, catalog, tmp_path)
        ids = _photos(tmp_path, catalog, 5)
        broken = tmp_path / "img" / "broken.jpg"
        broken.write_bytes(b"not a jpeg")
        bad = _image(catalog, broken.resolve())
    run = CliRunner()
    w = ["-w", str(ws.root), "classify", "predict"]
    first = run.invoke(cli, [*w, "--images", "unlabelled", "--batch-size", "2", "--json"])
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert (out["version"], out["selected"], out["predicted"], out["already"]) == (
        version,
        4,
        3,
        0,
    )
    assert [u[0] for u in out["unreadable"]] == [bad]
    with ws.open_catalog() as catalog:
        stored = catalog.classifications(version)
    assert sorted(stored) == [ids[0], ids[2], ids[4]]
    for c in stored.values():
        assert set(c.probs) == {"elephant_ivory", "other"}
        assert sum(c.probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert c.score == max(c.probs.values())
    again = run.invoke(cli, w)
    assert again.exit_code == 0, again.output
    assert f"classifier {version}: 2 of 6 'all' images classified now, 3 had an answer" in (
        again.output
    )
    assert "1 unreadable images left out" in again.output


def test_predict_without_a_classifier_says_how_to_train_one(workspace_factory):
    ws = workspace_factory()
    res = CliRunner().invoke(cli, ["-w", str(ws.root), "classify", "predict"])
    assert res.exit_code == 1
    assert "no promoted classifier yet: run `wb classify train`" in res.output


def test_predict_refuses_a_detector_version(workspace_factory):
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        register_model(ws, catalog)
    res = CliRunner().invoke(cli, ["-w", str(ws.root), "classify", "predict", "--version", VERSION])
    assert res.exit_code == 1
    assert "is a 'detect' model, not a 'classify' one" in res.output


# ---- wb prioritize --signal ----------------------------------------------------------

CLASSIFIER = "v002"


@pytest.fixture
def two_models(workspace_factory, tmp_path):
    """The promoted detector of prioritize_cases (species level, one elephant box per
    image, score = brightness) with its predictions stored, and a promoted ivory-vs-other
    classifier (a catalog row: its answers are stored by hand)."""
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        ids = confident_and_unsure(tmp_path, catalog)
        register_model(ws, catalog)
        todo = [i for k, i in ids.items() if k not in ("annotated", "excluded")]
        images = catalog.images(ids=todo)
        dets = BrightnessModel().predict([open_image(im.path) for im in images])
        catalog.store_predictions(
            VERSION, {im.id: [d.to_dict() for d in ds] for im, ds in zip(images, dets)}
        )
        cfg = ClassifyConfig(positive=["elephant_ivory"])
        catalog.add_model(
            CLASSIFIER,
            None,
            "category",
            ["elephant_ivory", "other"],
            {},
            {"train": cfg.to_dict()},
            task="classify",
        )
        catalog.promote_model(CLASSIFIER)
    return ws, ids, tmp_path


def prioritize(ws, *args):
    return CliRunner().invoke(cli, ["-w", str(ws.root), "prioritize", "--no-labelstudio", *args])


def test_disagreement_ranks_where_classifier_and_detector_part(two_models):
    ws, ids, tmp_path = two_models
    with ws.open_catalog() as catalog:
        catalog.store_classifications(
            CLASSIFIER,
            {
                ids["sure"]: {"elephant_ivory": 0.05, "other": 0.95},  # box 0.95: detector only
                ids["fair"]: {"elephant_ivory": 0.9, "other": 0.1},  # box 0.75: agree
                ids["unsure"]: {"elephant_ivory": 0.85, "other": 0.15},  # box 0.4: cls only
            },  # "middling" has no answer
        )
    res = prioritize(ws, "--signal", "disagreement", "--batch", "4", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    names = [e["path"].rsplit("/", 1)[1] for e in out]
    assert names == ["sure.png", "unsure.png", "fair.png", "middling.png"]
    c = {n: e["components"] for n, e in zip(names, out)}
    assert c["sure.png"]["disagreement_kind"] == "detector_only"
    assert out[0]["uncertainty"] == pytest.approx(242 / 255, abs=1e-3)  # the box's score
    assert c["unsure.png"]["disagreement_kind"] == "classifier_only"
    assert out[1]["uncertainty"] == 0.85
    assert c["fair.png"]["disagreement"] == 0.0 and c["middling.png"]["disagreement"] is None
    assert c["unsure.png"]["classifier"] == CLASSIFIER
    assert "signal disagreement with classifier v002 (1 images have no answer" in res.stderr
    shown = prioritize(ws, "--signal", "disagreement", "--show", "2")
    assert shown.exit_code == 0, shown.output
    assert "cls/det" in shown.output and "0.95 D" in shown.output
    page = (ws.reports_dir / "prioritize" / VERSION / "index.html").read_text()
    assert "classifier v002" in page and "classifier only" in page
    # combined: the detector's uncertainty lifted by the disagreement, never lowered
    both = prioritize(ws, "--signal", "uncertainty+disagreement", "--batch", "4", "--json")
    assert both.exit_code == 0, both.output
    for e in json.loads(both.stdout):
        u, d = e["components"]["uncertainty"], e["components"]["disagreement"] or 0.0
        assert e["uncertainty"] == pytest.approx(1 - (1 - u) * (1 - d), abs=1e-6)


def test_disagreement_without_classifier_answers_names_the_command(two_models):
    ws, _, _ = two_models
    res = prioritize(ws, "--signal", "disagreement")
    assert res.exit_code == 1
    assert "run `wb classify predict --version v002 --images unannotated` first" in res.output


def test_disagreement_without_a_classifier_says_how_to_train_one(workspace_factory, tmp_path):
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        confident_and_unsure(tmp_path, catalog)
        register_model(ws, catalog)
    res = prioritize(ws, "--signal", "uncertainty+disagreement")
    assert res.exit_code == 1
    assert "no promoted classifier yet: run `wb classify train`" in res.output


# ---- wb serve -----------------------------------------------------------------------


def test_serve_refuses_a_classifier_version(two_models):
    ws, _, _ = two_models
    res = CliRunner().invoke(cli, ["-w", str(ws.root), "serve", "--version", CLASSIFIER])
    assert res.exit_code == 1
    assert "model v002 is a 'classify' model, not a 'detect' one" in res.output
    assert "wb classify predict" in res.output


def test_serve_version_pins_a_detector_while_another_is_promoted(workspace_factory):
    from workbench.backend.holder import ModelHolder
    from workbench.backend.tiny_models import register_untrained_model

    ws = workspace_factory(classes=["kangaroo"])
    with ws.open_catalog() as catalog:
        pinned = register_untrained_model(ws, catalog, ["kangaroo"], image_size=64)
        register_untrained_model(ws, catalog, ["kangaroo"], image_size=64, promote=True)
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0, version=pinned)
    assert holder.require().version == pinned
    assert holder.refresh() is False and holder.version == pinned  # promotion not followed


def test_the_backend_lists_detectors_only(workspace_factory):
    from fastapi.testclient import TestClient

    from workbench.backend import BackendSettings, ModelHolder, create_app

    ws = workspace_factory(classes=["kangaroo"])
    with ws.open_catalog() as catalog:
        catalog.add_model("v001", None, "species", ["kangaroo"], {}, {}, task="detect")
        catalog.add_model("v002", None, "species", ["kangaroo", "other"], {}, {}, task="classify")
        catalog.promote_model("v002")
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0)
    client = TestClient(create_app(holder, ws.open_catalog, BackendSettings()))
    assert client.get("/versions").json() == {"versions": ["v001"], "model_version": None}
