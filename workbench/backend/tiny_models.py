"""Tiny detectors registered in a workspace, for the service's tests and benchmarks:
the service's behaviour (protocol, swap, latency overhead) does not depend on what the
weights learned, and building one takes a second instead of a training run. Untrained,
or trained a few steps where boxes must score differently (comparing two runtimes).
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def register_untrained_model(
    ws,
    catalog,
    classes: list[str],
    seed: int = 0,
    image_size: int = 96,
    backbone: str = "mobilenet_v3",
    promote: bool = False,
    weights: str = "none",
) -> str:
    """Register a randomly initialised detector (seeded); returns its version.
    ``weights="imagenet"``: the backbone's ImageNet weights (heads still random), whose
    features tell boxes apart, so the scores are not all tied (an ONNX export's check
    can then match boxes one to one)."""
    import torch

    from ..detection.train import TrainConfig, build_model

    config = TrainConfig(backbone=backbone, image_size=image_size, weights=weights)
    torch.manual_seed(seed)
    model = build_model(config, classes)
    return _register(ws, catalog, model, config, classes, promote, untrained=True, seed=seed)


def register_briefly_trained_model(
    ws,
    catalog,
    classes: list[str],
    steps: int = 3,
    image_size: int = 64,
    backbone: str = "mobilenet_v3",
    promote: bool = True,
    seed: int = 0,
) -> str:
    """Register a detector trained ``steps`` SGD steps on 4 synthetic images (seconds
    at 64 px): enough that its boxes score differently (an untrained one scores every
    box alike, so two runtimes keep different, equally scored boxes). Returns its version."""
    import numpy as np
    import torch
    from torchvision.transforms import functional as TF

    from ..detection.synthetic import draw_image
    from ..detection.train import TrainConfig, build_model

    config = TrainConfig(backbone=backbone, image_size=image_size, weights="none")
    torch.manual_seed(seed)
    model = build_model(config, classes)
    rng = np.random.default_rng(seed)
    drawn = [draw_image(rng, classes, image_size, 2) for _ in range(4)]
    images = [TF.to_tensor(im) for im, _ in drawn]
    targets = [
        {
            "boxes": torch.tensor([[b.x1, b.y1, b.x2, b.y2] for b in boxes]),
            "labels": torch.tensor([classes.index(b.label) + 1 for b in boxes]),
        }
        for _, boxes in drawn
    ]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(steps):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _register(ws, catalog, model, config, classes, promote, trained_steps=steps, seed=seed)


def _register(ws, catalog, model, config, classes, promote: bool, **data) -> str:
    """Save ``model``'s weights through the registry (``data``: how it was made)."""
    import torch

    from ..detection.registry import Registry

    registry = Registry.of(ws, catalog)
    with tempfile.TemporaryDirectory() as tmp:
        weights_file = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), weights_file)
        mv = registry.register(
            weights_file, config.to_dict(), list(classes), config.level, metrics={}, data=data
        )
    if promote:
        registry.promote(mv.version)
    return mv.version
