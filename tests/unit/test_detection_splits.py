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


def test_a_duplicate_group_is_dealt_as_one_unit():
    labels = {i: "a" for i in range(40)}
    groups = [[0, 1, 2, 3, 4, 5], [10, 11], [11, 12], [100, 101]]  # 100/101: not annotated
    dealt = deal_splits(labels, {}, seed=3, groups=groups)
    assert len({dealt[i] for i in range(6)}) == 1
    assert dealt[10] == dealt[11] == dealt[12]  # overlapping groups merge
    assert 100 not in dealt and len(dealt) == 40
    # a group of 6 counts as 6 images toward the shares: 40 images still ~70/15/15
    assert 24 <= Counter(dealt.values())["train"] <= 32


def test_a_leaking_group_takes_its_most_held_out_split_and_only_leaks_move():
    labels = {i: "a" for i in range(6)}
    existing = {0: "train", 1: "test", 2: "train", 3: "val", 4: "train", 5: None}
    groups = [[0, 1, 5], [2, 3]]
    # 0 joins its twin 1 in test, 5 (new) follows its group; 2 joins 3 in val; 4 stays
    assert deal_splits(labels, existing, groups=groups) == {0: "test", 5: "test", 2: "val"}
    # no leak, nothing to write
    assert deal_splits(labels, {i: "train" for i in range(6)}, groups=groups) == {}


def test_split_assigned_before_dedup_is_repaired(workspace_factory, tmp_path):
    from workbench.catalog.records import DupMember

    ws = workspace_factory(classes=["red", "blue"])
    cat = ws.open_catalog()
    add_synthetic_images(cat, tmp_path / "a", ["red", "blue"], 20, size=32, seed=1)
    first = ensure_splits(cat, ws.taxonomy, seed=0)  # dedup has not run yet
    train = [i for i, s in first.items() if s == "train"]
    test = [i for i, s in first.items() if s == "test"]
    # dedup now finds a train image duplicating a test image, and a second pair that is
    # settled as distinct (different objects): that one may straddle
    cat.save_dup_group(
        "g1", "duplicate", [DupMember(train[0], True, 0), DupMember(test[0], False, 1)]
    )
    gid = cat.save_dup_group(
        "g2", "duplicate", [DupMember(train[1], True, 0), DupMember(test[1], False, 1)]
    )
    cat.resolve_dup_group(gid, "distinct", None, "cli")
    second = ensure_splits(cat, ws.taxonomy, seed=0)
    assert second[train[0]] == second[test[0]] == "test"
    assert second[train[1]] == "train" and second[test[1]] == "test"
    assert {i: s for i, s in second.items() if s != first[i]} == {train[0]: "test"}
    # a new duplicate of a test image arrives later: it is dealt straight into test
    add_synthetic_images(cat, tmp_path / "b", ["red"], 4, size=32, seed=2)
    new_ids = sorted(set(i.id for i in cat.images(status="active", annotated=True)) - set(second))
    cat.save_dup_group(
        "g3", "conflict", [DupMember(test[1], True, 0), DupMember(new_ids[0], False, 2)]
    )
    third = ensure_splits(cat, ws.taxonomy, seed=0)
    assert third[new_ids[0]] == third[test[1]] == "test"
    assert {i: third[i] for i in second} == second
