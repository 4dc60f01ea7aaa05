"""ASL for the softmax box classifier: equals cross-entropy at zero gammas and clip."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import fastrcnn_loss

from workbench.detection.losses import AsymmetricLoss, asymmetric_loss, make_classification_loss


def _logits_and_labels(n=64, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g) * 3
    labels = torch.randint(0, classes, (n,), generator=g)
    labels[: n // 2] = 0  # plenty of background RoIs, as in Faster R-CNN's sampling
    return logits, labels


def test_asl_equals_cross_entropy_at_zero_gammas_and_clip():
    logits, labels = _logits_and_labels()
    asl = asymmetric_loss(logits, labels, gamma_pos=0, gamma_neg=0, clip=0)
    assert torch.allclose(asl, F.cross_entropy(logits, labels), atol=1e-6)


def test_asl_at_zero_equals_torchvisions_fastrcnn_classifier_loss_and_gradient():
    logits, labels = _logits_and_labels(seed=1)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    box_regression = torch.zeros(len(labels), 4 * logits.shape[1])
    tv_cls, _ = fastrcnn_loss(b, box_regression, [labels], [torch.zeros(len(labels), 4)])
    ours = AsymmetricLoss(gamma_pos=0, gamma_neg=0, clip=0)(a, labels)
    ours.backward()
    tv_cls.backward()
    assert torch.allclose(ours, tv_cls, atol=1e-6)
    assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_asl_discards_easy_background_rois_and_keeps_hard_ones():
    easy_bg = torch.tensor([[8.0, 0.0, 0.0]])  # p(background) ~ 0.999
    hard_bg = torch.tensor([[0.0, 2.0, 0.0]])  # the head calls it an object
    bg = torch.tensor([0])
    assert asymmetric_loss(easy_bg, bg, 0, 4, 0.05).item() == 0.0
    assert asymmetric_loss(hard_bg, bg, 0, 4, 0.05).item() > 0.1
    # positives are untouched by gamma_neg and clip
    pos = torch.tensor([1])
    assert torch.allclose(asymmetric_loss(hard_bg, pos, 0, 4, 0.05), F.cross_entropy(hard_bg, pos))


def test_loss_factory_and_bad_values():
    assert make_classification_loss("ce") is None
    assert make_classification_loss("asl", gamma_neg=2.0) == AsymmetricLoss(0.0, 2.0, 0.05)
    with pytest.raises(ValueError, match="choose one of: ce, asl"):
        make_classification_loss("focal")
    with pytest.raises(ValueError, match="clip"):
        AsymmetricLoss(clip=1.5)
