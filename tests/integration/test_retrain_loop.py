"""The loop end to end on tiny synthetic data: sticky splits across retrains,
promotion only when better, and the `wb retrain` / `wb models` commands."""

import json

import torch
from click.testing import CliRunner

from workbench.cli import cli
from workbench.detection import retrain as retrain_mod
from workbench.detection.retrain import RetrainOptions, retrain
from workbench.detection.synthetic import add_synthetic_images
from workbench.detection.train import TrainConfig

torch.set_num_threads(1)
CLASSES = ["red", "blue"]
TINY = dict(
    backbone="mobilenet_v3",
    image_size=64,
    batch_size=4,
    max_epochs=1,
    warmup_iters=0,
    head_epochs=0,
    hflip=0.0,
    scale_jitter=None,
    color_jitter=False,
)


def _options(**kw):
    return RetrainOptions(train=TrainConfig(**TINY), skip={"predict"}, **kw)


def test_splits_stick_and_promotion_happens_only_when_better(
    workspace_factory, tmp_path, monkeypatch
):
    ws = workspace_factory(classes=CLASSES)
    cat = ws.open_catalog()
    add_synthetic_images(cat, tmp_path / "a", CLASSES, 14, size=64, seed=1, negatives=2)
    test_scores = {}
    monkeypatch.setattr(
        retrain_mod,
        "evaluate_version",
        lambda ws, cat, version, split="test": {"mAP50": test_scores[version], "images": 3},
    )
    # these tiny models find nothing; the rule for that has its own test (below)
    monkeypatch.setattr(retrain_mod, "val_verdict", lambda ws, cat, version: None)
    test_scores["v001"] = 0.5
    first = retrain(ws, cat, _options())
    assert first.versions == ["v001"] and first.promoted == "v001"

    add_synthetic_images(cat, tmp_path / "b", CLASSES, 10, size=64, seed=2)
    test_scores["v002"] = 0.3
    second = retrain(ws, cat, _options())
    promote = next(s for s in second.steps if s.step == "promote")
    assert second.promoted == "v001" and promote.status == "skipped"
    assert "kept v001" in promote.message and "0.300" in promote.message

    test_scores["v003"] = 0.7
    third = retrain(ws, cat, _options())
    assert third.promoted == "v003"

    data = [
        json.loads((ws.models_dir / v / "data.json").read_text())["image_ids"]
        for v in ("v001", "v002")
    ]
    assert set(data[0]["test"]) <= set(data[1]["test"])  # old test images stay test
    assert not set(data[1]["test"]) & set(data[1]["train"])  # and never reach training
    assert set(data[0]["train"]) <= set(data[1]["train"])
    assert len(data[1]["train"]) > len(data[0]["train"])  # new images joined


def _finds_nothing(monkeypatch):
    """Every model answers as the one in the issue did: a single box at score 0.12."""
    from workbench.detection.predict import Detection, Predictor

    def predict(self, images, **kw):
        return [[Detection(self.classes[0], 1, 1, 20, 20, 0.12)] for _ in images]

    monkeypatch.setattr(Predictor, "predict", predict)


def test_a_model_that_finds_nothing_is_registered_not_promoted(
    workspace_factory, tmp_path, monkeypatch
):
    _finds_nothing(monkeypatch)
    ws = workspace_factory(classes=CLASSES)
    runner = CliRunner()
    base = ["--workspace", str(ws.root)]
    with ws.open_catalog() as cat:
        add_synthetic_images(cat, tmp_path / "a", CLASSES, 12, size=64, unannotated=2)
    args = ["retrain", "--backbone", "mobilenet_v3", "--image-size", "64", "--max-epochs", "1"]
    res = runner.invoke(cli, base + args + ["--batch-size", "4", "--weights", "none"])
    assert res.exit_code == 0, res.output
    assert "registered v001" in res.output and "promoted: none" in res.output
    assert (
        "- promote: v001 not promoted: it finds nothing on the validation split (no box at "
        "or above the display floor 0.3 on "
    ) in res.output
    assert "`--promote always` or `wb models promote v001` promotes it anyway" in res.output
    assert "predict: no promoted model to predict with" in res.output

    listed = runner.invoke(cli, base + ["models"])
    assert "v001 finds nothing on the validation split: no box at or above" in listed.output
    [entry] = json.loads(runner.invoke(cli, base + ["models", "--json"]).output)
    assert entry["promoted"] is False and "the highest at 0.12" in entry["metrics"]["finds_nothing"]

    # the event stream carries the same line
    events = []
    with ws.open_catalog() as cat:
        retrain(ws, cat, _options(), on_event=events.append)
    [promote] = [e for e in events if e.get("step") == "promote"]
    assert (
        promote["status"] == "skipped"
        and "v002 not promoted: it finds nothing" in (promote["message"])
    )

    # asked for, it is promoted, with the warning
    forced = runner.invoke(cli, base + args + ["--batch-size", "4", "--promote", "always"])
    assert forced.exit_code == 0, forced.output
    assert "promoted v003 (no model was promoted yet); warning: it finds nothing" in forced.output
    assert "promoted: v003" in forced.output


def test_no_negatives_leaves_background_images_out_of_training(workspace_factory, tmp_path):
    ws = workspace_factory(classes=CLASSES)
    cat = ws.open_catalog()
    add_synthetic_images(cat, tmp_path / "a", CLASSES, 8, size=64, negatives=6)
    options = RetrainOptions(
        train=TrainConfig(**TINY, negatives=False), skip={"predict", "evaluate"}
    )
    retrain(ws, cat, options)
    data = json.loads((ws.models_dir / "v001" / "data.json").read_text())["image_ids"]
    negatives = {im.id for im in cat.images() if im.label == "background"}
    assert not negatives & set(data["train"]) and negatives & set(data["val"] + data["test"])


def test_wb_retrain_and_wb_models(workspace_factory, tmp_path, monkeypatch):
    from workbench.detection import weights

    monkeypatch.setattr(weights, "_can_reach", lambda url, timeout=2.0: False)  # offline, as here
    ws = workspace_factory(classes=CLASSES)
    runner = CliRunner()
    base = ["--workspace", str(ws.root)]
    args = [
        "retrain",
        "--backbone",
        "mobilenet_v3",
        "--image-size",
        "64",
        "--max-epochs",
        "1",
        "--batch-size",
        "4",
    ]
    empty = runner.invoke(cli, base + args)
    assert empty.exit_code == 1 and "no training images" in empty.output

    with ws.open_catalog() as cat:
        add_synthetic_images(cat, tmp_path / "a", CLASSES, 10, size=64, unannotated=2)
    # a 1-epoch model finds nothing: asked for, it is promoted all the same
    ok = runner.invoke(cli, base + args + ["--promote", "always"])
    assert ok.exit_code == 0, ok.output
    assert "registered v001" in ok.output and "promoted: v001" in ok.output
    # off a terminal (CliRunner's stdout is not one): plain lines, no bar, none wrapped
    lines = ok.output.splitlines()
    assert "training: epoch 0, 2 batches (a line follows each epoch)" in lines
    assert any(ln.startswith("epoch 0: loss ") for ln in lines)
    assert "━" not in ok.output
    assert any(
        ln.startswith("✓ promote: promoted v001 (no model was promoted yet)") for ln in lines
    )
    # the plan comes first, with each choice and why
    plan = ok.output.index("plan: mobilenet_v3 at 64 px, weights none, regimen scratch")
    assert plan < ok.output.index("registered v001")
    assert "weights: no ImageNet weights for mobilenet_v3 on this machine" in ok.output
    assert "2 images without annotations" in ok.output

    listed = runner.invoke(cli, base + ["models", "--json"])
    assert listed.exit_code == 0
    [entry] = json.loads(listed.output)
    assert entry["version"] == "v001" and entry["promoted"] is True
    assert {"mAP50", "val_mAP50"} <= set(entry["metrics"])

    bad = runner.invoke(cli, base + ["models", "promote", "v404"])
    assert bad.exit_code == 1 and "no model version 'v404'; known versions: v001" in bad.output
    assert runner.invoke(cli, base + ["models", "promote", "v001"]).exit_code == 0

    offline = runner.invoke(cli, base + args + ["--weights", "imagenet", "--resume"])
    assert offline.exit_code == 1 and "nothing to resume" in offline.output


def test_ctrl_c_in_wb_retrain_says_what_was_kept_and_how_to_resume(
    workspace_factory, tmp_path, monkeypatch
):
    from workbench.detection import train as train_mod

    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as cat:
        add_synthetic_images(cat, tmp_path / "a", CLASSES, 10, size=64)
    real = train_mod.train_one_epoch

    def ctrl_c_in_epoch_1(model, optimizer, loader, device, epoch, *a, **k):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(model, optimizer, loader, device, epoch, *a, **k)

    monkeypatch.setattr(train_mod, "train_one_epoch", ctrl_c_in_epoch_1)
    args = [
        "--workspace",
        str(ws.root),
        "retrain",
        "--backbone",
        "mobilenet_v3",
        "--image-size",
        "64",
        "--max-epochs",
        "3",
        "--batch-size",
        "4",
        "--weights",
        "none",
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1
    assert "interrupted; epoch 0 is saved" in res.output and "wb retrain --resume" in res.output
    monkeypatch.setattr(train_mod, "train_one_epoch", real)
    resumed = CliRunner().invoke(cli, args + ["--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "(resuming)" in resumed.output and "registered v001" in resumed.output


def test_unusable_initial_weights_stop_wb_retrain_before_any_work(
    workspace_factory, tmp_path, monkeypatch
):
    from workbench.detection import weights

    ws = workspace_factory(classes=CLASSES)
    with ws.open_catalog() as cat:
        add_synthetic_images(cat, tmp_path / "a", CLASSES, 6, size=64)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    base = ["--workspace", str(ws.root)]
    runner = CliRunner()
    res = runner.invoke(cli, base + ["retrain", "--weights", str(corrupt)])
    assert res.exit_code == 1 and f"--weights {corrupt}: not a PyTorch state dict" in res.output
    assert "--weights none" in res.output
    missing = runner.invoke(cli, base + ["retrain", "--weights", str(tmp_path / "gone.pt")])
    assert missing.exit_code == 1 and "gone.pt: no such file" in missing.output
    monkeypatch.setattr(weights, "_can_reach", lambda url, timeout=2.0: False)
    offline = runner.invoke(
        cli, base + ["retrain", "--backbone", "densenet121", "--weights", "imagenet"]
    )
    assert offline.exit_code == 1 and "not available here" in offline.output
    assert "wb backbones" in offline.output
    assert (
        "no models yet" in runner.invoke(cli, base + ["models"]).output
    )  # nothing half-registered
