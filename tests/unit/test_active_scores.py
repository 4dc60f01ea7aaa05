"""Uncertainty scores and batch selection on hand-made probability vectors."""

import math

import numpy as np
import pytest

from workbench.active.selection import SelectionConfig, select_batch
from workbench.active.uncertainty import UncertaintyConfig, aggregate, box_uncertainty, score_image

pytestmark = pytest.mark.unit


def box(label, score, probs, x=0):
    return {
        "label": label,
        "x1": x,
        "y1": 0,
        "x2": x + 10,
        "y2": 10,
        "score": score,
        "probs": probs,
    }


def test_scores_match_the_formulas():
    p = {"a": 0.6, "b": 0.3, "background": 0.1}
    assert box_uncertainty(p, "least_confidence") == pytest.approx(0.4)
    assert box_uncertainty(p, "margin") == pytest.approx(1 - (0.6 - 0.3))
    h = -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1))
    assert box_uncertainty(p, "entropy") == pytest.approx(h / math.log(3))
    assert box_uncertainty({"a": 1.0, "b": 0.0}, "entropy") == pytest.approx(0.0)
    assert box_uncertainty({"a": 0.5, "b": 0.5}, "entropy") == pytest.approx(1.0)


def test_aggregates():
    assert aggregate([0.2, 0.6], "max") == 0.6
    assert aggregate([0.2, 0.6], "mean") == pytest.approx(0.4)
    assert aggregate([0.2, 0.6], "sum") == pytest.approx(1 - 0.8 * 0.4)
    assert aggregate([], "max") == 0.0


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="least_confidence, margin, entropy"):
        UncertaintyConfig(score="bald")
    with pytest.raises(ValueError, match="uncertainty, diverse, random"):
        SelectionConfig(strategy="smart")


@pytest.mark.parametrize("score", ["least_confidence", "margin", "entropy"])
def test_confident_image_ranks_below_unsure_one(score):
    cfg = UncertaintyConfig(score=score)
    sure = score_image(
        [box("a", 0.97, {"a": 0.97, "b": 0.02, "background": 0.01})], cfg, "a", ["a", "b"]
    )
    unsure = score_image(
        [box("a", 0.45, {"a": 0.45, "b": 0.40, "background": 0.15})], cfg, "a", ["a", "b"]
    )
    assert sure.uncertainty < unsure.uncertainty


def test_signals_lift_an_image_and_are_reported():
    cfg = UncertaintyConfig()
    probs = {"a": 0.9, "b": 0.05, "background": 0.05}
    agree = score_image([box("a", 0.9, probs)], cfg, "a", ["a", "b"], ["a", "b"])
    disagree = score_image([box("a", 0.9, probs)], cfg, "b", ["a", "b"], ["a", "b"])
    assert disagree.components["label_disagreement"] == 1.0
    assert disagree.uncertainty > agree.uncertainty
    missed = score_image([], cfg, "a", ["a", "b"], ["a"])
    assert missed.components["missed_product"] == 1.0 and missed.uncertainty == pytest.approx(0.5)
    background = score_image([], cfg, "background", ["a", "b"], ["a"])
    assert background.uncertainty == 0.0
    unstable = score_image(
        [box("a", 0.9, probs), box("b", 0.8, {"b": 0.8, "a": 0.2}, x=1)], cfg, None, ["a", "b"]
    )
    assert unstable.components["class_instability"] == 1.0


def test_uncertainty_strategy_takes_most_uncertain_first():
    ids = [10, 11, 12, 13]
    got = select_batch(ids, [0.1, 0.9, 0.5, 0.7], SelectionConfig("uncertainty", batch=3))
    assert got == [11, 13, 12]


def test_random_strategy_is_seeded():
    ids = list(range(50))
    u = [0.0] * 50
    a = select_batch(ids, u, SelectionConfig("random", batch=5, seed=3))
    b = select_batch(ids, u, SelectionConfig("random", batch=5, seed=3))
    assert a == b and len(set(a)) == 5


def test_diverse_never_picks_two_exact_copies():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 16))
    # ten copies of image 0 (the most uncertain ones) plus five distinct images
    feats = np.vstack([np.repeat(base[:1], 10, axis=0), base[1:]])
    ids = list(range(15))
    unc = [0.99] * 10 + [0.5, 0.4, 0.3, 0.2, 0.1]
    got = select_batch(ids, unc, SelectionConfig("diverse", batch=5), features=feats)
    assert len(got) == 5
    assert sum(1 for g in got if g < 10) == 1  # one copy at most
    assert got[0] < 10  # the most uncertain comes first
    plain = select_batch(ids, unc, SelectionConfig("uncertainty", batch=5))
    assert all(g < 10 for g in plain)  # what diverse protects against
