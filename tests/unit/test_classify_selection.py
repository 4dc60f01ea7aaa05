"""Which epoch's weights a classifier keeps (``classify.train.improves``): a higher
validation accuracy, or the same accuracy at a lower validation loss. Before the
tie-break, a 46-image validation split at accuracy 1.0 from epoch 2 kept epoch 2 of 5 in
both transfer and combi (benchmarks/results/classify_quality_kangaroo_cpu_before_tiebreak.json:
identical scores), throwing combi's all-layer phase away."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.classify.train import improves, nll


def test_a_higher_accuracy_wins_whatever_the_loss():
    assert improves(0.9, 5.0, 0.8, 0.1)
    assert not improves(0.8, 0.01, 0.9, 5.0)


def test_at_the_same_accuracy_the_lower_loss_wins_and_a_tie_keeps_the_earlier():
    assert improves(1.0, 0.05, 1.0, 0.2)
    assert not improves(1.0, 0.2, 1.0, 0.05)
    assert not improves(1.0, 0.2, 1.0, 0.2)


def test_the_first_epoch_always_improves_on_the_start():
    assert improves(0.0, 10.0, -1.0, float("inf"))


def test_nll_is_the_mean_negative_log_probability_of_the_truth():
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.0, 1.0]])
    assert nll(probs, [0, 0, 1]) == pytest.approx(-(math.log(0.5) + math.log(0.9) + 0) / 3)
    assert nll(torch.tensor([[1.0, 0.0]]), [1]) == pytest.approx(-math.log(1e-12))  # finite
    assert nll(torch.empty(0, 2), []) == 0.0
