"""The built-in demo data set: deterministic, exact boxes, planted copies that are what they claim."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from workbench.demo_data import NEAR_DUPLICATE_KINDS, generate_demo_data
from workbench.errors import WorkbenchError
from workbench.taxonomy import BACKGROUND, Taxonomy

N_SMALL = 80


@pytest.fixture(scope="module")
def small(module_tmp):
    out = module_tmp.mktemp("demo-small")
    progress: list[tuple[int, int]] = []
    summary = generate_demo_data(
        out, seed=7, n_images=N_SMALL, on_progress=lambda d, t: progress.append((d, t))
    )
    coco = json.loads((out / "annotations.json").read_text())
    planted = json.loads((out / "planted.json").read_text())
    return out, summary, coco, planted, progress


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _pixels(root: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(root / rel).convert("RGB"), dtype=np.float32)


def _boxes_by_file(coco: dict) -> dict[str, list[tuple[str, list[float]]]]:
    names = {c["id"]: c["name"] for c in coco["categories"]}
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    out: dict[str, list] = {f: [] for f in files.values()}
    for a in coco["annotations"]:
        out[files[a["image_id"]]].append((names[a["category_id"]], a["bbox"]))
    return out


def _images_by_file(coco: dict) -> dict[str, dict]:
    return {im["file_name"]: im for im in coco["images"]}


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(small, tmp_path):
    out, *_ = small
    again = generate_demo_data(tmp_path / "again", seed=7, n_images=N_SMALL)
    assert _digests(tmp_path / "again") == _digests(out)
    assert again.n_images == N_SMALL
    generate_demo_data(tmp_path / "other", seed=8, n_images=N_SMALL)
    assert _digests(tmp_path / "other") != _digests(out)


def test_files_on_disk_match_the_coco_images_and_the_summary(small):
    out, summary, coco, _, progress = small
    on_disk = sorted(str(p.relative_to(out)) for p in (out / "images").rglob("*.jpg"))
    assert on_disk == sorted(im["file_name"] for im in coco["images"])
    assert summary.n_images == len(on_disk) == N_SMALL
    assert summary.n_boxes == len(coco["annotations"])
    assert sum(summary.by_label.values()) == N_SMALL
    assert progress[-1] == (N_SMALL, N_SMALL) and len(progress) == N_SMALL
    for im in coco["images"]:
        assert im["file_name"].split("/")[1] == im["label"]  # folder-per-class
        with Image.open(out / im["file_name"]) as img:
            assert img.size == (im["width"], im["height"])


def test_every_taxonomy_category_is_an_image_label_and_a_box_label(small):
    _, summary, coco, _, _ = small
    categories = Taxonomy.default().categories
    assert [c["name"] for c in coco["categories"]] == categories
    assert [c["id"] for c in coco["categories"]] == list(range(1, len(categories) + 1))
    assert set(summary.by_label) == set(categories) | {BACKGROUND}
    box_labels = {name for boxes in _boxes_by_file(coco).values() for name, _ in boxes}
    assert box_labels == set(categories)


def test_boxes_lie_inside_their_image_and_are_not_degenerate(small):
    _, _, coco, _, _ = small
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        W, H = sizes[a["image_id"]]
        assert x >= 0 and y >= 0 and x + w <= W and y + h <= H, a
        assert w >= 3 and h >= 3, a


def test_boxes_are_tight_around_what_was_drawn(small):
    # The rows and columns just inside a box hold object pixels; the background
    # around an object differs from it, so a loose box would have a flat border.
    out, _, coco, planted, _ = small
    copies = {pair[1] for pairs in planted.values() for pair in pairs}
    checked = 0
    for rel, boxes in _boxes_by_file(coco).items():
        if rel in copies or len(boxes) != 1:
            continue
        px = _pixels(out, rel)
        x, y, w, h = boxes[0][1]
        inside = px[y : y + h, x : x + w]
        ring = np.concatenate(
            [
                px[max(y - 6, 0) : y, x : x + w].reshape(-1, 3),
                px[y + h : y + h + 6, x : x + w].reshape(-1, 3),
            ]
        )
        if len(ring) == 0:
            continue
        # the object is not the surface around it
        assert (
            np.abs(inside.reshape(-1, 3).mean(0) - ring.mean(0)).sum() > 8
            or inside.std() > 2 * ring.std()
        ), rel
        checked += 1
    assert checked > 5


def test_background_images_have_no_boxes_and_all_others_have_some(small):
    _, summary, coco, _, _ = small
    boxes = _boxes_by_file(coco)
    labels = {im["file_name"]: im["label"] for im in coco["images"]}
    assert summary.by_label[BACKGROUND] >= 1
    for rel, label in labels.items():
        if label == BACKGROUND:
            assert boxes[rel] == [], rel
        else:
            assert boxes[rel], rel


def test_exact_duplicates_are_byte_identical_with_identical_boxes(small):
    out, summary, coco, planted, _ = small
    boxes = _boxes_by_file(coco)
    assert len(planted["exact_duplicates"]) == summary.n_planted_exact >= 1
    for a, b in planted["exact_duplicates"]:
        assert a != b
        assert (out / a).read_bytes() == (out / b).read_bytes()
        assert boxes[a] == boxes[b]


def test_conflicts_are_one_file_under_a_product_class_and_under_non_wildlife(small):
    out, summary, coco, planted, _ = small
    labels = {im["file_name"]: im["label"] for im in coco["images"]}
    boxes = _boxes_by_file(coco)
    assert len(planted["conflicts"]) == summary.n_conflicts >= 1
    for a, b in planted["conflicts"]:
        assert (out / a).read_bytes() == (out / b).read_bytes()
        assert labels[a] not in ("non_wildlife", BACKGROUND) and labels[b] == "non_wildlife"
        assert [bb for _, bb in boxes[a]] == [bb for _, bb in boxes[b]]
        assert {name for name, _ in boxes[b]} == {"non_wildlife"}


def test_every_near_duplicate_kind_is_planted(small):
    _, summary, _, planted, _ = small
    assert {kind for *_, kind in planted["near_duplicates"]} == set(NEAR_DUPLICATE_KINDS)
    assert summary.n_planted_near == len(planted["near_duplicates"])


def _near(planted, kind):
    pairs = [(a, b) for a, b, k in planted["near_duplicates"] if k == kind]
    assert pairs, kind
    return pairs


def test_a_mirrored_copy_is_the_mirror_of_its_original_with_mirrored_boxes(small):
    out, _, coco, planted, _ = small
    boxes, images = _boxes_by_file(coco), _images_by_file(coco)
    for a, b in _near(planted, "mirrored"):
        assert np.abs(_pixels(out, a)[:, ::-1] - _pixels(out, b)).mean() < 3.0
        W = images[a]["width"]
        mirrored = sorted((n, [W - x - w, y, w, h]) for n, (x, y, w, h) in boxes[a])
        assert sorted(boxes[b]) == mirrored


def test_a_resized_copy_is_smaller_with_boxes_scaled(small):
    out, _, coco, planted, _ = small
    boxes, images = _boxes_by_file(coco), _images_by_file(coco)
    for a, b in _near(planted, "resized"):
        sx = images[b]["width"] / images[a]["width"]
        sy = images[b]["height"] / images[a]["height"]
        assert 0.55 < sx < 0.85 and abs(sx - sy) < 0.02
        small_a = (
            Image.open(out / a).convert("RGB").resize((images[b]["width"], images[b]["height"]))
        )
        assert np.abs(np.asarray(small_a, np.float32) - _pixels(out, b)).mean() < 6.0
        assert len(boxes[a]) == len(boxes[b])
        for (na, ba), (nb, bb) in zip(sorted(boxes[a]), sorted(boxes[b])):
            assert na == nb
            assert np.allclose([ba[0] * sx, ba[1] * sy, ba[2] * sx, ba[3] * sy], bb, atol=2.5)


def test_same_frame_copies_keep_boxes_and_change_pixels_as_named(small):
    out, _, coco, planted, _ = small
    boxes = _boxes_by_file(coco)
    for kind in ("reencoded", "brightened", "grayscale"):
        for a, b in _near(planted, kind):
            pa, pb = _pixels(out, a), _pixels(out, b)
            assert pa.shape == pb.shape and boxes[a] == boxes[b]
            assert (out / a).read_bytes() != (out / b).read_bytes()
            if kind == "reencoded":
                assert np.abs(pa - pb).mean() < 6.0
            elif kind == "brightened":
                assert pb.mean() > pa.mean() * 1.1
            else:
                assert (
                    np.abs(pb[..., 0] - pb[..., 1]).max() <= 3
                    and np.abs(pb[..., 1] - pb[..., 2]).max() <= 3
                )
                luma = np.asarray(ImageOps.grayscale(Image.open(out / a)), np.float32)
                assert np.abs(luma - pb[..., 0]).mean() < 4.0


def test_a_banner_copy_covers_the_bottom_and_clips_boxes_under_it(small):
    out, _, coco, planted, _ = small
    boxes, images = _boxes_by_file(coco), _images_by_file(coco)
    for a, b in _near(planted, "banner"):
        pa, pb = _pixels(out, a), _pixels(out, b)
        H = images[a]["height"]
        assert np.abs(pa[: H // 2] - pb[: H // 2]).mean() < 3.0
        assert np.abs(pa[-8:] - pb[-8:]).mean() > 20
        banner_top = H - max(12, H // 9)
        for _, (_x, y, _w, h) in boxes[b]:
            assert y + h <= banner_top


def test_a_crop_copy_is_a_region_of_the_original_with_shifted_boxes(small):
    out, _, coco, planted, _ = small
    boxes, images = _boxes_by_file(coco), _images_by_file(coco)
    for a, b in _near(planted, "crop"):
        pa, pb = _pixels(out, a), _pixels(out, b)
        h, w = pb.shape[:2]
        assert 0.75 < w / images[a]["width"] < 0.95
        # find the offset: the crop equals the original there, within JPEG tolerance
        best = min(
            (np.abs(pa[y : y + h, x : x + w] - pb).mean(), x, y)
            for y in range(pa.shape[0] - h + 1)
            for x in range(pa.shape[1] - w + 1)
        )
        err, x0, y0 = best
        assert err < 3.0
        # every box in the crop is an original box shifted and clipped (or shrunk by the cut)
        for name, (x, y, bw, bh) in boxes[b]:
            assert any(
                n == name
                and x + x0 >= ox - 1
                and y + y0 >= oy - 1
                and x + x0 + bw <= ox + ow + 1
                and y + y0 + bh <= oy + oh + 1
                for n, (ox, oy, ow, oh) in boxes[a]
            ), (name, x, y)


def test_coco_file_loads_in_pycocotools_with_the_expected_counts(small):
    from pycocotools.coco import COCO

    out, summary, _, _, _ = small
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == summary.n_images
    assert len(coco.getAnnIds()) == summary.n_boxes
    assert len(coco.getCatIds()) == len(Taxonomy.default().categories)


def test_default_size_has_the_planned_mix(demo_data):
    coco = json.loads((demo_data / "annotations.json").read_text())
    planted = json.loads((demo_data / "planted.json").read_text())
    n = len(coco["images"])
    labels = [im["label"] for im in coco["images"]]
    assert n == 300
    assert 0.02 <= len(planted["exact_duplicates"]) / n <= 0.04
    assert 5 <= len(planted["conflicts"]) <= 7
    assert 0.08 <= labels.count(BACKGROUND) / n <= 0.12
    per_image = np.bincount([a["image_id"] for a in coco["annotations"]], minlength=n + 1)[1:]
    assert per_image.max() >= 4 and (per_image >= 2).sum() > n / 4  # several objects per image
    sides = np.array([max(a["bbox"][2], a["bbox"][3]) for a in coco["annotations"]])
    assert np.median(sides) >= 40


def test_too_few_images_for_one_per_class_is_refused_with_the_minimum(tmp_path):
    with pytest.raises(WorkbenchError, match="n_images=10 is too small: need at least"):
        generate_demo_data(tmp_path, n_images=10)
