"""torchvision's RoIHeads with two small hooks, no copied code.

- **Classification loss**: with ``classification_loss`` set (e.g. ``AsymmetricLoss``),
  the box classifier's loss is recomputed from the sampled RoIs' logits and labels,
  captured as torchvision's own ``forward`` passes them; the box-regression loss is
  torchvision's.
- **Full class probabilities**: ``postprocess_detections`` keeps only the winning
  class's score per box. After calling it we find, for every kept box, the proposal it
  came from (its decoded, clipped box for its class is bit-identical, and so is its
  score) and attach that proposal's whole softmax vector, so every detection carries
  ``probs`` (N, num_classes) with column 0 = background.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import boxes as box_ops

logger = logging.getLogger(__name__)


class WorkbenchRoIHeads(RoIHeads):
    def __init__(self, *args, classification_loss: Callable | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.classification_loss = classification_loss
        self._sampled_labels: torch.Tensor | None = None
        self._class_logits: torch.Tensor | None = None
        self._probs: list[torch.Tensor] | None = None
        self.box_predictor.register_forward_hook(self._keep_logits)

    @classmethod
    def from_roi_heads(cls, heads: RoIHeads, classification_loss: Callable | None = None):
        """The same heads (same modules, same settings) with the hooks added."""
        return cls(
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            heads.proposal_matcher.high_threshold,
            heads.proposal_matcher.low_threshold,
            heads.fg_bg_sampler.batch_size_per_image,
            heads.fg_bg_sampler.positive_fraction,
            heads.box_coder.weights,
            heads.score_thresh,
            heads.nms_thresh,
            heads.detections_per_img,
            classification_loss=classification_loss,
        )

    # -- hooks --------------------------------------------------------------------
    def _keep_logits(self, module, inputs, output) -> None:
        if self.training and self.classification_loss is not None:
            self._class_logits = output[0]

    def select_training_samples(self, proposals, targets):
        out = super().select_training_samples(proposals, targets)
        if self.classification_loss is not None:
            self._sampled_labels = torch.cat(out[2], dim=0)
        return out

    def postprocess_detections(self, class_logits, box_regression, proposals, image_shapes):
        boxes, scores, labels = super().postprocess_detections(
            class_logits, box_regression, proposals, image_shapes
        )
        probs = _per_image(F.softmax(class_logits, -1), proposals)
        decoded = _per_image(self.box_coder.decode(box_regression, proposals), proposals)
        self._probs = [
            self._probs_of_kept(*args)
            for args in zip(boxes, scores, labels, probs, decoded, image_shapes)
        ]
        return boxes, scores, labels

    @staticmethod
    def _probs_of_kept(kept_boxes, kept_scores, kept_labels, probs, decoded, image_shape):
        tracing = torch.jit.is_tracing()  # exporting to ONNX: no branch on the data
        if len(kept_boxes) == 0 and not tracing:
            return probs.new_zeros((0, probs.shape[1]))
        decoded = box_ops.clip_boxes_to_image(decoded, image_shape)  # (N, C, 4)
        candidates = decoded[:, kept_labels]  # (N, K, 4)
        # not `&=`: the ONNX exporter has no in-place `and` (aten::__iand_)
        same = (candidates == kept_boxes[None]).all(-1) & (
            probs[:, kept_labels] == kept_scores[None]
        )
        if not tracing and not bool(same.any(0).all()):
            logger.warning(
                "could not trace %d detections to their proposals; their "
                "probabilities come from the closest one",
                int((~same.any(0)).sum()),
            )
        source = same.float().argmax(0)
        return probs[source]

    def forward(self, features, proposals, image_shapes, targets=None):
        result, losses = super().forward(features, proposals, image_shapes, targets)
        if self.training:
            if self.classification_loss is not None:
                losses["loss_classifier"] = self.classification_loss(
                    self._class_logits, self._sampled_labels
                )
            self._class_logits = self._sampled_labels = None
        else:
            if self._probs is not None:
                for r, p in zip(result, self._probs):
                    r["probs"] = p
            self._probs = None
        return result, losses


def _per_image(rows: torch.Tensor, proposals: list[torch.Tensor]) -> list[torch.Tensor]:
    """``rows`` (all images' proposals, concatenated) cut per image. One image is not cut:
    an exported graph (always one image) would otherwise keep the traced image's
    proposal count as a constant and fail on any other image."""
    return [rows] if len(proposals) == 1 else list(rows.split([len(p) for p in proposals]))
