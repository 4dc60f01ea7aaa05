"""Box-classification losses for the softmax head of Faster R-CNN.

``asymmetric_loss`` adapts ASL (Ridnik et al. 2021, "Asymmetric Loss For Multi-Label
Classification") from per-class sigmoids to the softmax box classifier: every sampled
RoI has exactly one target class, index 0 being background.

- A foreground RoI (target ``y > 0``) is a *positive*: ``-(1 - p_y)**gamma_pos * log p_y``.
- A background RoI (target 0) is a *negative*: its "positive-ness" is ``1 - p_bg``,
  shifted by the probability margin ``clip`` as ASL does, ``p_m = max(1 - p_bg - clip, 0)``,
  and it costs ``-(p_m)**gamma_neg * log(1 - p_m)``. Easy negatives (background RoIs the
  head already calls background with probability above ``1 - clip``) cost nothing, and
  ``gamma_neg`` down-weights the rest: the asymmetry lets the many background RoIs stop
  drowning the few object RoIs.

At ``gamma_pos = gamma_neg = clip = 0`` both terms are ``-log p_y``: plain cross-entropy,
averaged over RoIs exactly as torchvision's ``fastrcnn_loss`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import check_choice
from .names import LOSSES


@dataclass(frozen=True)
class AsymmetricLoss:
    """ASL for a softmax classifier; call it as ``loss(class_logits, labels)``."""

    gamma_pos: float = 0.0
    gamma_neg: float = 4.0
    clip: float = 0.05

    def __post_init__(self) -> None:
        if self.gamma_pos < 0 or self.gamma_neg < 0:
            raise ValueError(
                f"ASL gammas must be >= 0, got gamma_pos={self.gamma_pos}, "
                f"gamma_neg={self.gamma_neg}"
            )
        if not 0.0 <= self.clip < 1.0:
            raise ValueError(f"ASL clip must be within [0, 1), got {self.clip}")

    def __call__(self, class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return asymmetric_loss(class_logits, labels, self.gamma_pos, self.gamma_neg, self.clip)


def asymmetric_loss(
    class_logits: torch.Tensor,
    labels: torch.Tensor,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
) -> torch.Tensor:
    """Mean ASL over RoIs. ``class_logits``: (N, C) with column 0 = background;
    ``labels``: (N,) int64 targets."""
    if class_logits.numel() == 0:
        return class_logits.sum() * 0.0
    logits = class_logits.float()
    log_p = F.log_softmax(logits, dim=-1)
    log_p_y = log_p.gather(1, labels[:, None]).squeeze(1)
    p_y = log_p_y.exp()
    positive = labels > 0

    # positives: focal term on the target class
    pos_loss = -log_p_y
    if gamma_pos > 0:
        pos_loss = pos_loss * (1.0 - p_y).clamp(min=0.0).pow(gamma_pos)

    # negatives (background RoIs): shifted probability of "not background"
    if clip > 0:
        p_m = (1.0 - p_y - clip).clamp(min=0.0)
        neg_loss = -torch.log((1.0 - p_m).clamp(min=1e-8))
    else:
        p_m = (1.0 - p_y).clamp(min=0.0)
        neg_loss = -log_p_y
    if gamma_neg > 0:
        neg_loss = neg_loss * p_m.pow(gamma_neg)

    return torch.where(positive, pos_loss, neg_loss).mean()


def make_classification_loss(
    name: str,
    gamma_pos: float | None = None,
    gamma_neg: float | None = None,
    clip: float | None = None,
):
    """``None`` for torchvision's own cross-entropy, or an ``AsymmetricLoss``."""
    if check_choice("loss", name, LOSSES) == "ce":
        return None
    kw = {
        k: v
        for k, v in (("gamma_pos", gamma_pos), ("gamma_neg", gamma_neg), ("clip", clip))
        if v is not None
    }
    return AsymmetricLoss(**kw)
