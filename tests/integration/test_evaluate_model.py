"""`wb evaluate` end to end with a real (tiny) Faster R-CNN, trained through the
training API, registered, promoted, and measured on the catalog's test split and on an
outside set."""

from __future__ import annotations

import json
import random

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from workbench.catalog.records import Box, ImageRecord

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CLASSES = ["cat", "dog"]
COLOURS = {"cat": (220, 30, 30), "dog": (30, 30, 220)}
SIZE = 96


def make_image(path, rng, label):
    img = Image.new("RGB", (SIZE, SIZE), (235, 235, 225))
    boxes = []
    if label != "background":
        w, h = rng.randint(30, 50), rng.randint(30, 50)
        x, y = rng.randint(0, SIZE - w), rng.randint(0, SIZE - h)
        img.paste(COLOURS[label], (x, y, x + w, y + h))
        boxes.append(Box(label, x, y, x + w, y + h))
    img.save(path)
    return boxes


@pytest.fixture(scope="module")
def trained_ws(module_tmp):
    """A workspace with 20 annotated images in sticky splits and one promoted model."""
    from workbench.detection.dataset import collect_samples
    from workbench.detection.registry import Registry
    from workbench.detection.splits import ensure_splits
    from workbench.detection.train import TrainConfig, fit
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(1)
    root = module_tmp.mktemp("evaluate-e2e")
    ws = Workspace.create(root / "ws", Taxonomy.flat(CLASSES))
    rng = random.Random(0)
    (root / "photos").mkdir()
    with ws.open_catalog() as catalog:
        for i in range(20):
            label = ["cat", "dog", "cat", "dog", "background"][i % 5]
            path = root / "photos" / f"{i:03d}.png"
            boxes = make_image(path, rng, label)
            catalog.add_image(
                ImageRecord(
                    id=None, path=str(path), width=SIZE, height=SIZE, label=label, annotated=True
                ),
                boxes=boxes,
            )
        splits = ensure_splits(catalog, ws.taxonomy)
        samples = collect_samples(catalog, ws.taxonomy, CLASSES, "species").samples
        by_split = {s: [x for x in samples if splits[x.image_id] == s] for s in ("train", "val")}
        config = TrainConfig(
            backbone="mobilenet_v3",
            image_size=SIZE,
            max_epochs=1,
            regimen="scratch",
            batch_size=4,
            warmup_iters=1,
            scale_jitter=None,
            color_jitter=False,
        )
        result = fit(config, CLASSES, by_split["train"], by_split["val"], root / "run")
        registry = Registry.of(ws, catalog)
        mv = registry.register(
            result.weights_path, config.to_dict(), CLASSES, "species", metrics={}, data={}
        )
        registry.promote(mv.version)
        second = registry.register(
            result.weights_path,
            config.to_dict(),
            CLASSES,
            "species",
            metrics={},
            data={},
            parent=mv.version,
        )
    return ws, mv.version, second.version, root


def invoke(ws, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--workspace", str(ws.root), "evaluate", *args])


def test_wb_evaluate_measures_the_promoted_model_on_the_test_split(trained_ws):
    from workbench.detection.metrics import evaluate_detections
    from workbench.detection.predict import Predictor
    from workbench.images import open_image

    ws, version, _, _ = trained_ws
    res = invoke(ws, "--json", "--score-threshold", "0.1")

    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    with ws.open_catalog() as catalog:
        test = catalog.images(split="test")
        boxes = catalog.boxes_by_image([im.id for im in test])
    assert out["model"] == version and out["split"] == "test"
    assert out["images"] == len(test) > 0
    assert set(out["per_class"]) >= set(CLASSES)
    for key in ("mAP50", "mAP", "mAR100", "accuracy"):
        assert out[key] is None or 0.0 <= out[key] <= 1.0
    assert (ws.reports_dir / f"eval_{version}_test.json").is_file()
    assert (ws.reports_dir / f"eval_{version}_test.png").is_file()

    # the same figures as the metrics on the predictor's own output for those images
    predictor = Predictor(ws.models_dir / version)
    dets = predictor.predict([open_image(im.path) for im in test])
    expected = evaluate_detections(
        {str(im.id): boxes[im.id] for im in test},
        {str(im.id): d for im, d in zip(test, dets)},
        CLASSES,
        image_labels={str(im.id): im.label for im in test},
        score_threshold=0.1,
    )
    assert out["mAP50"] == expected.mAP50 and out["accuracy"] == expected.accuracy
    assert out["confusion_matrix"]["matrix"] == expected.confusion_matrix


def test_wb_evaluate_compares_two_versions(trained_ws):
    ws, first, second, _ = trained_ws
    res = invoke(ws, "--model", second, "--compare", first, "--json")

    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["models"] == [first, second]
    # the same weights registered twice: every delta that exists is zero
    assert all(v in (None, 0.0) for k, v in out["delta"].items() if k != "per_class")
    assert (ws.reports_dir / f"compare_{first}_vs_{second}_test.png").is_file()


def test_wb_evaluate_on_an_outside_folder_set(trained_ws):
    ws, version, _, root = trained_ws
    rng = random.Random(1)
    for label in ("cat", "dog", "background"):
        (root / "outside" / label).mkdir(parents=True)
        make_image(root / "outside" / label / "x.png", rng, label)

    res = invoke(
        ws, "--model", version, "--images", str(root / "outside"), "--format", "folders", "--json"
    )

    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["images"] == 3 and out["split"] == "outside" and out["mAP50"] is None
    assert out["accuracy"] is not None
    with ws.open_catalog() as catalog:
        assert len(catalog.images()) == 20  # nothing was added to the catalog


def test_wb_evaluate_images_leaves_out_classes_the_model_does_not_know(trained_ws):
    ws, version, _, root = trained_ws
    rng = random.Random(2)
    for label, n in (("cat", 1), ("dog", 1), ("kangaroo", 2), ("wombat", 1)):
        (root / "mixed" / label).mkdir(parents=True)
        for i in range(n):
            make_image(root / "mixed" / label / f"{i}.png", rng, "cat")
    args = ["--model", version, "--images", str(root / "mixed"), "--format", "folders"]

    res = invoke(ws, *args, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["images"] == 2  # the cat and the dog; kangaroos and the wombat are in no score
    assert out["unknown_classes"]["images"] == 3
    assert out["unknown_classes"]["classes"] == ["kangaroo", "wombat"]

    text = invoke(ws, *args)
    assert text.exit_code == 0, text.output
    note = (
        "left out 3 images of classes the model does not know: kangaroo, wombat "
        "(its classes: cat, dog); they are in no score"
    )
    assert [ln for ln in text.output.splitlines() if "left out" in ln] == [note]

    only = root / "only-kangaroos"
    (only / "kangaroo").mkdir(parents=True)
    make_image(only / "kangaroo" / "0.png", rng, "cat")
    res = invoke(ws, "--model", version, "--images", str(only), "--format", "folders")
    assert res.exit_code == 1
    assert f"none of the images in {only} is of a class model {version} knows" in res.output
    assert "(theirs: kangaroo; the model's: cat, dog)" in res.output
