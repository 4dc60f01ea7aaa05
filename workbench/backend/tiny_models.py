"""Untrained tiny detectors registered in a workspace, for the service's tests and
benchmarks: the service's behaviour (protocol, swap, latency overhead) does not depend
on what the weights learned, and building one takes a second instead of a training run.
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
) -> str:
    """Register a randomly initialised detector (seeded); returns its version."""
    import torch

    from ..detection.registry import Registry
    from ..detection.train import TrainConfig, build_model

    config = TrainConfig(backbone=backbone, image_size=image_size, weights="none")
    torch.manual_seed(seed)
    model = build_model(config, classes)
    registry = Registry.of(ws, catalog)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), weights)
        mv = registry.register(
            weights,
            config.to_dict(),
            list(classes),
            config.level,
            metrics={},
            data={"untrained": True, "seed": seed},
        )
    if promote:
        registry.promote(mv.version)
    return mv.version
