"""Splits: stratified by label, seeded, and sticky across runs."""

from collections import Counter

from workbench.detection.splits import deal_splits, ensure_splits
from workbench.detection.synthetic import add_synthetic_images


def test_deal_is_stratified_and_seeded():
    labels = {i: ("a" if i % 4 else "b") for i in range(200)}
    s1 = deal_splits(labels, {}, seed=7)
    assert s1 == deal_splits(labels, {}, seed=7)
    assert s1 != deal_splits(labels, {}, seed=8)
    per_label = Counter((labels[i], s) for i, s in s1.items())
    assert per_label[("a", "train")] == 105 and per_label[("a", "test")] == 22
    assert per_label[("b", "train")] == 35 and {
        per_label[("b", "val")],
        per_label[("b", "test")],
    } == {7, 8}


def test_existing_splits_never_change_and_new_images_fill_the_shares(workspace_factory, tmp_path):
    ws = workspace_factory(classes=["red", "blue"])
    cat = ws.open_catalog()
    add_synthetic_images(cat, tmp_path / "a", ["red", "blue"], 20, size=32, seed=1, negatives=4)
    first = ensure_splits(cat, ws.taxonomy, seed=0)
    assert len(first) == 24 and set(first.values()) == {"train", "val", "test"}
    add_synthetic_images(cat, tmp_path / "b", ["red", "blue"], 20, size=32, seed=2)
    second = ensure_splits(cat, ws.taxonomy, seed=99)  # another seed cannot move old images
    assert {i: second[i] for i in first} == first
    assert Counter(second.values())["test"] >= 5
    # unannotated images get no split: they are not ground truth
    add_synthetic_images(cat, tmp_path / "c", ["red"], 0, size=32, unannotated=3)
    assert len(ensure_splits(cat, ws.taxonomy)) == 44
