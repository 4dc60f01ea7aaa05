"""The backbone registry, initial weights, and full class probabilities per box."""
import time

import pytest
import torch
from torchvision.models.detection.roi_heads import RoIHeads

from workbench.detection import weights as weights_mod
from workbench.detection.backbones import create_detector, get_backbone, list_backbones
from workbench.errors import WorkbenchError

torch.set_num_threads(1)


def test_registry_lists_the_three_backbones_and_names_them_on_a_typo():
    assert list_backbones() == ["densenet121", "mobilenet_v3", "resnet50_fpn"]
    with pytest.raises(WorkbenchError, match="unknown backbone 'densnet'.*densenet121, mobilenet_v3"):
        create_detector("densnet", 3)


def test_densenet_is_one_1024_channel_map_with_cheap_roi_sampling_and_none_kwargs_dropped():
    model = create_detector("densenet121", 3, image_size=64, box_batch_size_per_image=None)
    assert model.backbone.out_channels == 1024
    feats = model.backbone(torch.rand(1, 3, 64, 64))
    assert list(feats) == ["0"] and feats["0"].shape[1] == 1024
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 128   # None kept the default
    assert model.rpn._post_nms_top_n["testing"] == 300
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    assert create_detector("densenet121", 3, image_size=64, rpn_post_nms_top_n_test=50) \
        .rpn._post_nms_top_n["testing"] == 50


def test_imagenet_weights_offline_without_cache_fail_fast_naming_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(weights_mod, "_can_reach", lambda url, timeout=2.0: False)
    t = time.monotonic()
    with pytest.raises(WorkbenchError) as exc:
        create_detector("mobilenet_v3", 3, weights="imagenet")
    assert time.monotonic() - t < 5
    msg = str(exc.value)
    assert "--weights PATH" in msg and "--weights none" in msg and "hub" in msg


def test_imagenet_weights_load_from_the_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(weights_mod, "_can_reach", lambda url, timeout=2.0: False)
    enum = get_backbone("mobilenet_v3").imagenet_weights()
    fake = torchvision.models.mobilenet_v3_large().state_dict()
    cached = weights_mod.hub_cache_file(enum)
    cached.parent.mkdir(parents=True)
    torch.save(fake, cached)
    monkeypatch.setattr(type(enum), "get_state_dict",
                        lambda self, *a, **k: torch.load(cached, weights_only=True))
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
        stock = RoIHeads(h.box_roi_pool, h.box_head, h.box_predictor, 0.5, 0.5, 128, 0.25,
                         h.box_coder.weights, h.score_thresh, h.nms_thresh, h.detections_per_img)
        model.roi_heads = stock.eval()
        theirs = model(images)
    for o, t in zip(ours, theirs):
        assert len(o["boxes"]) > 0
        assert torch.equal(o["boxes"], t["boxes"]) and torch.equal(o["labels"], t["labels"])
        assert o["probs"].shape == (len(o["boxes"]), 4)
        assert torch.allclose(o["probs"].sum(1), torch.ones(len(o["boxes"])))
        picked = o["probs"].gather(1, o["labels"][:, None]).squeeze(1)
        assert torch.equal(picked, o["scores"])
