"""Saved views a reviewer opens by name in the App (``?view=<name>`` in the URL).

Names are already URL slugs, so the name is the slug. The views are rebuilt on
every run (cheap: a saved view is its stages, not a copy of the samples); views
this module saved earlier that no longer apply are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from .evaluation import EvalKeys, evaluated_view

INFO_KEY = "wb_views"
MODEL_KEY = "wb_views_model"  # the version the views are about
THRESHOLDS_KEY = "wb_label_error_thresholds"  # the thresholds of likely-label-errors
HIGH_CONFIDENCE = 0.8
TOP_N = 100
RIGHT_CLASS_WRONG_EVIDENCE = "right-class-wrong-evidence"
LIKELY_LABEL_ERRORS = "likely-label-errors"


@dataclass(frozen=True)
class ViewSpec:
    name: str
    description: str
    view: object  # a fiftyone DatasetView


def _error_count(keys: EvalKeys):
    from fiftyone import ViewField as F

    return F(f"{keys.classwise}_fp") + F(f"{keys.classwise}_fn")


def review_views(
    ds,
    model: str | None,
    previous: str | None,
    high_confidence: float = HIGH_CONFIDENCE,
    top_n: int = TOP_N,
) -> list[ViewSpec]:
    """The views for ``model`` (and, with ``previous``, what it fixed and broke)."""
    from fiftyone import ViewField as F

    specs = []
    if model is not None:
        k = EvalKeys(model)
        ev = evaluated_view(ds)
        specs += [
            ViewSpec(
                "high-confidence-false-positives",
                f"{model}: boxes with confidence >= {high_confidence} that match no "
                "ground truth of their class",
                ev.filter_labels(
                    k.pred_field, (F(k.classwise) == "fp") & (F("confidence") >= high_confidence)
                ).sort_by(f"{k.classwise}_fp", reverse=True),
            ),
            ViewSpec(
                "missed-ground-truth",
                f"{model}: ground-truth boxes the model did not find",
                ev.filter_labels("ground_truth", F(k.classwise) == "fn").sort_by(
                    f"{k.classwise}_fn", reverse=True
                ),
            ),
            ViewSpec(
                "class-confusions",
                f"{model}: boxes in the right place with the wrong class",
                ev.filter_labels(
                    k.pred_field, (F(k.agnostic) == "fp") & (F(f"{k.agnostic}_id") != "")
                ),
            ),
            ViewSpec(
                RIGHT_CLASS_WRONG_EVIDENCE,
                f"{model}: correct boxes whose heatmap lies mostly outside the box "
                "(from `wb explain`)",
                ev.filter_labels(
                    k.pred_field,
                    (F(k.classwise) == "tp") & (F("cam_flagged") == True),  # noqa: E712
                ),
            ),
            ViewSpec(
                LIKELY_LABEL_ERRORS,
                f"{model}: images whose ground truth the model disputes, most likely label "
                "error first; the suspect boxes are in label_errors (kind as label, score as "
                "confidence; `wb review errors` lists them)",
                ds.match(F("label_error_score") > 0).sort_by("label_error_score", reverse=True),
            ),
            ViewSpec(
                "worst-images",
                f"{model}: the {top_n} images with the most false positives + misses",
                ev.match(_error_count(k) > 0).sort_by(_error_count(k), reverse=True).limit(top_n),
            ),
        ]
        if previous is not None:
            p = EvalKeys(previous)
            specs += [
                ViewSpec(
                    "fixed-by-new-model",
                    f"images where {model} makes fewer errors than {previous}",
                    ev.match(_error_count(p) > _error_count(k)).sort_by(
                        _error_count(p) - _error_count(k), reverse=True
                    ),
                ),
                ViewSpec(
                    "broken-by-new-model",
                    f"images where {model} makes more errors than {previous}",
                    ev.match(_error_count(k) > _error_count(p)).sort_by(
                        _error_count(k) - _error_count(p), reverse=True
                    ),
                ),
            ]
    specs += [
        ViewSpec(
            "duplicates-and-conflicts",
            "images in duplicate groups and cross-class conflicts, group by group",
            ds.exists("dedup_group").sort_by("dedup_group"),
        ),
        ViewSpec(
            "most-uncertain",
            f"the {top_n} images the model is least sure of (from `wb prioritize`)",
            ds.exists("uncertainty").sort_by("uncertainty", reverse=True).limit(top_n),
        ),
    ]
    return specs


def save_review_views(ds, specs: list[ViewSpec], model: str | None = None) -> dict[str, int]:
    """Save the views (replacing earlier ones) about ``model``; ``{name: samples}``."""
    previous = set(ds.info.get(INFO_KEY) or [])
    names = [s.name for s in specs]
    for name in previous - set(names):
        if ds.has_saved_view(name):
            ds.delete_saved_view(name)
    counts = {}
    for spec in specs:
        ds.save_view(spec.name, spec.view, description=spec.description, overwrite=True)
        counts[spec.name] = len(spec.view)
    ds.info[INFO_KEY] = names
    ds.info[MODEL_KEY] = model
    ds.save()
    return counts
