"""Review in FiftyOne: the model's errors against ground-truth boxes.

``wb`` never imports fiftyone itself: all FiftyOne work runs in a worker process
(``worker.py``) whose environment keeps FiftyOne's state in
``<workspace>/services/fiftyone``. This package's public API is the ``wb`` side:

- ``build_review(ws, model=None)``: build/update the dataset, evaluations and saved
  views; returns the summary ``wb review --json`` prints.
- ``ReviewApp(ws, model=None, port=5151)``: the same, then the App on 127.0.0.1
  until ``stop()``.
- ``describe_review(ws)``: what the dataset holds (per sample and per view).
"""

from __future__ import annotations

from .environment import DEFAULT_APP_PORT, dataset_name, review_paths
from .runner import ReviewApp, build_review, describe_review

__all__ = [
    "DEFAULT_APP_PORT",
    "ReviewApp",
    "build_review",
    "dataset_name",
    "describe_review",
    "review_paths",
]
