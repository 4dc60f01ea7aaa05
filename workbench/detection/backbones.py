"""The detector factory: one registry of Faster R-CNN backbones.

``create_detector(name, num_classes, **kw)`` builds a torchvision ``FasterRCNN`` whose
RoI heads carry our two hooks (a swappable classification loss, full class
probabilities per detection; see ``heads.py``). ``num_classes`` counts background,
as torchvision does: ``len(classes) + 1``. Options left ``None`` keep the backbone's
defaults (timm's rule), and an unknown name lists the known ones.

Adding a backbone is one ``@register_backbone`` builder in this module.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from ..errors import WorkbenchError
from .heads import WorkbenchRoIHeads
from .weights import ensure_available, load_matching, load_state_dict_file

DEFAULT_BACKBONE = "densenet121"

# The cheaper RoI sampling measured in notes/ml.md (2.9x faster training, better mAP in
# the same CPU time than torchvision's 512 / 1000): defaults for every backbone.
COMMON_DEFAULTS: dict[str, Any] = {
    "image_size": 512,
    "box_batch_size_per_image": 128,     # RoIs sampled per image in training
    "rpn_post_nms_top_n_test": 300,      # proposals kept per image at test time
    "box_score_thresh": 0.05,
    "box_detections_per_img": 100,
}


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[..., FasterRCNN]        # build(num_classes, weights_backbone, **options)
    imagenet_weights: Callable[[], Any]     # -> the torchvision weight enum for the backbone
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, imagenet_weights: Callable[[], Any], description: str = "",
                      **defaults: Any):
    """Decorator: register ``build(num_classes, weights_backbone, **options)``."""

    def wrap(build):
        _REGISTRY[name] = BackboneSpec(name, build, imagenet_weights,
                                       {**COMMON_DEFAULTS, **defaults}, description)
        return build

    return wrap


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def get_backbone(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise WorkbenchError(f"unknown backbone '{name}'; choose one of: "
                             f"{', '.join(list_backbones())}") from None


def create_detector(name: str, num_classes: int, weights: str | None = "none",
                    classification_loss: Callable | None = None, **kw: Any) -> FasterRCNN:
    """Build a Faster R-CNN. ``weights``: ``"none"`` (random init), ``"imagenet"``
    (the backbone's torchvision ImageNet weights, from the hub cache) or a path to a
    state dict. Other keyword options (``image_size``, ``box_batch_size_per_image``,
    ``rpn_post_nms_top_n_test``, ``box_score_thresh``, any ``FasterRCNN`` keyword) override
    the backbone's defaults; ``None`` values are ignored."""
    spec = get_backbone(name)
    if num_classes < 2:
        raise WorkbenchError(f"a detector needs at least one class besides background "
                             f"(num_classes={num_classes} counts background)")
    options = {**spec.defaults, **{k: v for k, v in kw.items() if v is not None}}
    weights = weights or "none"
    weights_backbone = None
    if weights == "imagenet":
        weights_backbone = spec.imagenet_weights()
        ensure_available(weights_backbone, name)
    model = spec.build(num_classes, weights_backbone, **options)
    model.roi_heads = WorkbenchRoIHeads.from_roi_heads(model.roi_heads, classification_loss)
    # Training images arrive resized (and scale-jittered) by our dataset transforms;
    # torchvision's own resize would undo the jitter. Evaluation still resizes.
    model.transform._skip_resize = True
    if weights not in ("none", "imagenet"):
        load_matching(model, load_state_dict_file(weights), f"--weights {weights}")
    return model


def _size_options(options: dict[str, Any]) -> dict[str, Any]:
    """The image side length becomes torchvision's min/max size: the longer side is
    scaled to ``image_size`` (our dataset already resizes so, making this a no-op there)."""
    size = options.pop("image_size")
    return {"min_size": size, "max_size": size, **options}


def _all_layers_trainable(weights_backbone, n_layers: int) -> dict[str, int]:
    # torchvision freezes early layers of a pretrained backbone by default; our regimens
    # decide what trains (and it warns when told this about an untrained one)
    return {"trainable_backbone_layers": n_layers} if weights_backbone is not None else {}


class FeatureMap(nn.Module):
    """A classifier's feature extractor as a one-map detection backbone."""

    def __init__(self, body: nn.Module, out_channels: int):
        super().__init__()
        self.body = body
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        # DenseNet's features end in a BatchNorm; its classifier applies the ReLU.
        return OrderedDict([("0", torch.relu(self.body(x)))])


# ---- the backbones ---------------------------------------------------------------
@register_backbone("densenet121",
                   imagenet_weights=lambda: torchvision.models.DenseNet121_Weights.IMAGENET1K_V1,
                   description="DenseNet121 `features`, one 1024-channel map (the study's model)")
def _densenet121(num_classes: int, weights_backbone, **options) -> FasterRCNN:
    net = torchvision.models.densenet121(weights=weights_backbone)
    backbone = FeatureMap(net.features, out_channels=1024)
    anchors = AnchorGenerator(sizes=(options.pop("anchor_sizes", (32, 64, 128, 256, 512)),),
                              aspect_ratios=((0.5, 1.0, 2.0),))
    roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    return FasterRCNN(backbone, num_classes=num_classes, rpn_anchor_generator=anchors,
                      box_roi_pool=roi_pool, **_size_options(options))


@register_backbone("mobilenet_v3",
                   imagenet_weights=lambda: torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
                   description="MobileNetV3-Large with FPN (fast on CPU)")
def _mobilenet_v3(num_classes: int, weights_backbone, **options) -> FasterRCNN:
    return torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=weights_backbone, num_classes=num_classes,
        **_all_layers_trainable(weights_backbone, 6), **_size_options(options))


@register_backbone("resnet50_fpn",
                   imagenet_weights=lambda: torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
                   description="ResNet-50 with FPN (torchvision's reference detector)")
def _resnet50_fpn(num_classes: int, weights_backbone, **options) -> FasterRCNN:
    return torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=weights_backbone, num_classes=num_classes,
        **_all_layers_trainable(weights_backbone, 5), **_size_options(options))


def backbone_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone body parameters, everything else: FPN, RPN, RoI heads). The regimens
    freeze the first list for head-only epochs."""
    body, head = [], []
    for name, p in model.named_parameters():
        (body if name.startswith("backbone.body.") else head).append(p)
    return body, head
