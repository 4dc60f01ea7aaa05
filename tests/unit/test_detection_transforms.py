"""(image, target) transforms move boxes with pixels."""

import random

import numpy as np
import torch
from PIL import Image

from workbench.detection.transforms import (
    RandomHorizontalFlip,
    ResizeLongest,
    ScaleJitter,
    make_transforms,
)


def _image_with_box():
    arr = np.zeros((50, 100, 3), dtype=np.uint8)
    arr[10:30, 20:40] = 255  # the object: x 20..40, y 10..30
    return Image.fromarray(arr), {
        "boxes": torch.tensor([[20.0, 10.0, 40.0, 30.0]]),
        "labels": torch.tensor([1]),
    }


def _white_extent(img):
    a = np.asarray(img)[..., 0] > 127
    ys, xs = np.nonzero(a)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_flip_moves_the_box_with_the_pixels():
    img, target = _image_with_box()
    out, t = RandomHorizontalFlip(p=1.0)(img, target)
    assert t["boxes"].tolist() == [[60.0, 10.0, 80.0, 30.0]]
    assert _white_extent(out) == [60, 10, 80, 30]


def test_resize_longest_scales_boxes_and_keeps_aspect():
    img, target = _image_with_box()
    out, t = ResizeLongest(200)(img, target)
    assert out.size == (200, 100)
    assert t["boxes"].tolist() == [[40.0, 20.0, 80.0, 60.0]]
    assert np.allclose(_white_extent(out), [40, 20, 80, 60], atol=1)


def test_scale_jitter_and_train_pipeline_keep_boxes_on_the_object():
    random.seed(3)
    img, target = _image_with_box()
    out, t = ScaleJitter(0.5, 0.5)(img, target)
    assert out.size == (50, 25) and t["boxes"].tolist() == [[10.0, 5.0, 20.0, 15.0]]
    tensor, t = make_transforms(64, train=True)(*_image_with_box())
    x1, y1, x2, y2 = (round(v) for v in t["boxes"][0].tolist())
    assert tensor.shape[0] == 3 and tensor[:, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].mean() > 0.5
