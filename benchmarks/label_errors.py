"""Planted label errors on the kangaroo set: does `wb review errors` put them on top?

Issue 21's goal: corrupt 5% of the boxes (a third dropped, a third shifted by half a box,
a third swapped to a planted second class, ``wallaby``) and add 2% extra boxes where no
kangaroo is; train ONE model on the corrupted labels through the real `retrain` pipeline
(the offline pretrained default, efficientnet_lite0; the budget is epochs); predict the
annotated images the way `wb review` does (``ensure_predictions``); score them with the
same function `wb review errors` calls (``catalog_label_errors``). Then, per error kind,
the top k suspects of that kind (k = 5% of the catalog's boxes) against the planted ones:
precision and recall at k, and the lift over a random k boxes (expected recall k/N).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/label_errors.py --epochs 4 \\
        --out benchmarks/results/label_errors_kangaroo_cpu.json

A planted error counts as found when a suspect of its kind lies on it: the corrupted box
itself (extra, shifted, swapped), or, for a dropped box, a ``missing`` suspect with IoU
>= ``--hit-iou`` with the box that was dropped. Each planted error is found at most once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SECOND_CLASS = "wallaby"
KINDS = ("missing", "extra", "wrong_class", "localisation")
PLANTED_AS = {"drop": "missing", "extra": "extra", "swap": "wrong_class", "shift": "localisation"}


def _default_kangaroo() -> Path:
    """shared/data/kangaroo next to the checkout (or next to its worktrees' folder)."""
    for up in (REPO.parent, REPO.parent.parent):
        if (up / "shared/data/kangaroo").is_dir():
            return up / "shared/data/kangaroo"
    return REPO.parent / "shared/data/kangaroo"


def _shifted(b, width: int, height: int, rng: random.Random):
    """``b`` moved by half its width (or height) towards the side where it fits."""
    w, h = b.x2 - b.x1, b.y2 - b.y1
    moves = []
    if b.x2 + w / 2 <= width:
        moves.append((w / 2, 0))
    if b.x1 - w / 2 >= 0:
        moves.append((-w / 2, 0))
    if b.y2 + h / 2 <= height:
        moves.append((0, h / 2))
    if b.y1 - h / 2 >= 0:
        moves.append((0, -h / 2))
    if not moves:
        return None
    dx, dy = rng.choice(moves)
    return replace(b, x1=b.x1 + dx, y1=b.y1 + dy, x2=b.x2 + dx, y2=b.y2 + dy)


def _extra_box(boxes, all_boxes, width: int, height: int, rng: random.Random):
    """A kangaroo-sized box where no box of the image is (IoU < 0.05), or None."""
    from workbench.catalog.records import Box
    from workbench.geometry import iou_xyxy

    for _ in range(100):
        ref = rng.choice(all_boxes)
        w = min(width * 0.9, (ref.x2 - ref.x1) * rng.uniform(0.5, 1.0))
        h = min(height * 0.9, (ref.y2 - ref.y1) * rng.uniform(0.5, 1.0))
        x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = Box("kangaroo", x1, y1, x1 + w, y1 + h)
        if all(iou_xyxy(box.xyxy, b.xyxy) < 0.05 for b in boxes):
            return box
    return None


def plant_errors(cat, rate: float, extra_rate: float, seed: int) -> tuple[list[dict], int]:
    """Corrupt the catalog's ground truth; returns (the planted errors, boxes before)."""
    rng = random.Random(seed)
    images = {im.id: im for im in cat.images(status="active", annotated=True)}
    boxes = cat.boxes_by_image(list(images))
    every = [(i, j) for i in sorted(boxes) for j in range(len(boxes[i]))]
    n_boxes = len(every)
    n_corrupt = round(rate * n_boxes)
    per_kind = [n_corrupt // 3 + (1 if k < n_corrupt % 3 else 0) for k in range(3)]
    chosen = rng.sample(every, n_corrupt)
    kinds = ["drop"] * per_kind[0] + ["shift"] * per_kind[1] + ["swap"] * per_kind[2]
    new = {i: list(bs) for i, bs in boxes.items()}
    planted, dropped = [], set()
    for (i, j), kind in zip(chosen, kinds):
        b, im = boxes[i][j], images[i]
        if kind == "shift":
            moved = _shifted(b, im.width, im.height, rng)
            if moved is None:  # a box as big as the image: swap its class instead
                kind, moved = "swap", None
            else:
                new[i][j] = moved
                planted.append({"kind": "shift", "image_id": i, "box": moved.xyxy, "was": b.xyxy})
                continue
        if kind == "swap":
            new[i][j] = replace(b, label=SECOND_CLASS)
            planted.append({"kind": "swap", "image_id": i, "box": b.xyxy, "was": b.xyxy})
        else:
            dropped.add((i, j))
            planted.append({"kind": "drop", "image_id": i, "box": None, "was": b.xyxy})
    all_boxes = [b for bs in boxes.values() for b in bs]
    n_extra = round(extra_rate * n_boxes)
    for i in rng.sample(sorted(images), n_extra):
        im = images[i]
        box = _extra_box(new[i], all_boxes, im.width, im.height, rng)
        if box is not None:
            new[i].append(box)
            planted.append({"kind": "extra", "image_id": i, "box": box.xyxy, "was": None})
    changed = {p["image_id"] for p in planted}
    for i in changed:
        kept = [b for j, b in enumerate(new[i]) if (i, j) not in dropped]
        cat.replace_boxes(i, kept)
    return planted, n_boxes


def _same(a, b, iou: float) -> bool:
    from workbench.geometry import iou_xyxy

    return a is not None and b is not None and iou_xyxy(tuple(a), tuple(b)) >= iou


def hits(suspects: list, planted: list[dict], hit_iou: float) -> list[int | None]:
    """For each suspect (in rank order), the index of the planted error it finds, or None."""
    free = set(range(len(planted)))
    out = []
    for s in suspects:
        found = None
        for p in sorted(free):
            e = planted[p]
            if e["image_id"] != s.image_id or PLANTED_AS[e["kind"]] != s.kind:
                continue
            if (e["kind"] == "drop" and _same(s.box, e["was"], hit_iou)) or (
                e["kind"] != "drop" and _same(s.box, e["box"], 0.99)
            ):
                found = p
                break
        if found is not None:
            free.discard(found)
        out.append(found)
    return out


def at_k(suspects: list, planted: list[dict], k: int, n_units: int, hit_iou: float) -> dict:
    top = suspects[:k]
    found = [h for h in hits(top, planted, hit_iou) if h is not None]
    n = len(planted)
    precision = len(found) / k if k else 0.0
    recall = len(found) / n if n else 0.0
    random_recall = k / n_units  # a random k of the N boxes holds k/N of the planted ones
    random_precision = n / n_units
    return {
        "planted": n,
        "k": k,
        "suspects": len(suspects),
        "found": len(found),
        "precision": precision,
        "recall": recall,
        "random_precision": random_precision,
        "random_recall": random_recall,
        "lift": (recall / random_recall) if random_recall else None,
    }


def table(rows: dict[str, dict], goal: float) -> str:
    lines = [
        "| kind | planted | k | found in top k | precision@k | random precision | recall@k "
        f"| random recall | lift (x random) | goal >= {goal:g}x |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, r in rows.items():
        lift = "n/a" if r["lift"] is None else f"{r['lift']:.1f}x"
        ok = (
            "n/a"
            if r["lift"] is None or not r["planted"]
            else ("yes" if r["lift"] >= goal else "no")
        )
        lines.append(
            f"| {kind} | {r['planted']} | {r['k']} | {r['found']} | {r['precision']:.3f} | "
            f"{r['random_precision']:.3f} | {r['recall']:.3f} | {r['random_recall']:.3f} | "
            f"{lift} | {ok} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kangaroo", type=Path, default=_default_kangaroo())
    ap.add_argument("--rate", type=float, default=0.05, help="boxes corrupted (drop/shift/swap)")
    ap.add_argument("--extra-rate", type=float, default=0.02, help="extra boxes added")
    ap.add_argument("--top", type=float, default=0.05, help="k as a share of the boxes")
    ap.add_argument("--epochs", type=int, default=4, help="the training budget")
    ap.add_argument("--max-minutes", type=float, default=12.0, help="a safety cap")
    ap.add_argument("--head-epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0, help="the planting and training seed")
    ap.add_argument("--hit-iou", type=float, default=0.3, help="missing suspect vs dropped box")
    ap.add_argument("--goal", type=float, default=5.0, help="the lift the issue asks for")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the workspace here")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = ap.parse_args()
    if not args.kangaroo.is_dir():
        sys.exit(f"no kangaroo data at {args.kangaroo} (give --kangaroo DIR)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from workbench.detection.retrain import RetrainOptions, retrain
    from workbench.detection.train import TrainConfig
    from workbench.ingest import ingest
    from workbench.review.label_errors import Thresholds, catalog_label_errors
    from workbench.review.predictions import ensure_predictions
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    root = args.workdir or Path(tempfile.mkdtemp(prefix="wb-label-errors-"))
    saved = root / "planted.json"  # with --workdir, a re-run scores the trained model again
    started = time.perf_counter()
    if saved.is_file():
        ws = Workspace.open(root / "ws")
        state = json.loads(saved.read_text())
        planted, n_boxes, version, train_s = (
            state["planted"],
            state["boxes_before"],
            state["model"],
            state["train_s"],
        )
        print(f"re-using {root}: model {version}, {len(planted)} planted errors", flush=True)
    else:
        ws = Workspace.create(root / "ws", Taxonomy.flat(["kangaroo", SECOND_CLASS]))
    with ws.open_catalog() as cat:
        if not saved.is_file():
            ingest(ws, cat, args.kangaroo, "voc")
            planted, n_boxes = plant_errors(cat, args.rate, args.extra_rate, args.seed)
            counts = {k: sum(1 for p in planted if p["kind"] == k) for k in PLANTED_AS}
            print(f"{n_boxes} boxes; planted {counts}", flush=True)
            cfg = TrainConfig(
                max_epochs=args.epochs,
                patience=args.epochs,
                head_epochs=args.head_epochs,
                batch_size=args.batch_size,
                max_minutes=args.max_minutes,
                seed=args.seed,
            )
            t0 = time.perf_counter()
            report = retrain(
                ws, cat, RetrainOptions(train=cfg, promote="always", skip={"pull", "refresh"})
            )
            train_s = time.perf_counter() - t0
            version = report.versions[-1]
            state = {"planted": planted, "boxes_before": n_boxes, "model": version}
            saved.write_text(json.dumps(state | {"train_s": train_s}))
        counts = {k: sum(1 for p in planted if p["kind"] == k) for k in PLANTED_AS}
        model = cat.model(version)
        metrics = model.metrics or {}
        print(
            f"trained {version} ({model.backbone}, config {model.config.get('train', {})}) in "
            f"{train_s:.0f} s: mAP@0.5 {metrics.get('mAP50')} on the (corrupted) test split",
            flush=True,
        )
        t0 = time.perf_counter()
        ensure_predictions(ws, cat, version)
        predict_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        every = catalog_label_errors(cat, ws.taxonomy, version, Thresholds(min_score=0.0))
        score_s = time.perf_counter() - t0
        checked = [im.id for im in cat.images(status="active", annotated=True)]
        n_now = sum(len(b) for b in cat.boxes_by_image(checked).values())

    k = math.ceil(args.top * n_now)
    rows = {}
    for kind in KINDS:
        mine = [p for p in planted if PLANTED_AS[p["kind"]] == kind]
        suspects = [s for s in every.suspects if s.kind == kind]
        rows[kind] = at_k(suspects, mine, k, n_now, args.hit_iou)
    rows["all kinds"] = at_k(every.suspects, planted, k, n_now, args.hit_iou)
    print()
    print(
        f"top {args.top:.0%} = {k} of {n_now} boxes in the corrupted catalog, per kind; "
        f"random: a random {k} boxes"
    )
    print(table(rows, args.goal))
    result = {
        "args": {k_: str(v) for k_, v in vars(args).items()},
        "boxes_before": n_boxes,
        "boxes_after": n_now,
        "planted": counts,
        "model": version,
        "model_metrics": {m: metrics.get(m) for m in ("mAP50", "mAP", "epochs", "train_seconds")},
        "seconds": {
            "train": round(train_s, 1),
            "predict": round(predict_s, 1),
            "score": round(score_s, 3),
            "total": round(time.perf_counter() - started, 1),
        },
        "images_scored": every.images,
        "rows": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
