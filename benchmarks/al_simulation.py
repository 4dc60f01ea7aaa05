"""Does uncertainty-first annotation save labels? A simulated active-learning loop.

Simulated annotators know every box. From a small labelled seed set, each round adds
``--batch`` labels chosen by a strategy (``uncertainty``, ``diverse``, ``random``: the
same ``score_image`` / ``select_batch`` code `wb prioritize` runs), retrains a small
detector (torchvision Faster R-CNN with workbench's ``--backbone``, by default
efficientnet_lite0 from its packaged ImageNet weights, at ``--image-size`` px, a fixed ``--iters-per-round`` or ``--seconds-per-round``, warm-
started from the previous round), and evaluates mAP@0.5 (pycocotools, through
``workbench.detection.metrics.evaluate_detections``) on a fixed test split. Every
(strategy, seed) run starts from the same seed set for that seed.

Data sets:

- ``demo``: the built-in demo data (``generate_demo_data``), species level, planted
  copies left out;
- ``kangaroo``: ``../shared/data/kangaroo`` (Pascal VOC) mixed with the demo data's
  background-only images as negatives (about 1 negative per 4 kangaroo photos).

Outputs in ``--out``: ``results.json`` (every curve), ``curves.png`` (mean and min/max
over seeds per strategy), ``table.md`` (labels needed to reach random's final mAP@0.5,
as a ratio to random, and the paired per-seed comparison). The full CPU runs in
docs/prioritize.md (2 cores, 40-50 min each)::

    .venv/bin/python benchmarks/al_simulation.py --device cpu --dataset demo --n-images 400 \\
        --image-size 224 --rois 32 --seeds 3 --rounds 5 --seed-labels 20 --batch 20 \\
        --iters-per-round 200 --threads 1 --jobs 2 --out al-demo
    .venv/bin/python benchmarks/al_simulation.py --device cpu --dataset kangaroo --image-size 160 \\
        --rois 32 --seeds 3 --rounds 5 --seed-labels 20 --batch 10 --iters-per-round 200 \\
        --threads 1 --jobs 2 --out al-kangaroo

On a GPU::

    python benchmarks/al_simulation.py --device cuda --dataset demo --seeds 3 --rounds 6 \\
        --batch 20 --iters-per-round 300 --jobs 3
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # runnable without installing the package
    sys.path.insert(0, str(REPO))

from workbench.active.prioritize import product_classes  # noqa: E402
from workbench.active.selection import SelectionConfig, select_batch  # noqa: E402
from workbench.active.uncertainty import UncertaintyConfig, score_image  # noqa: E402

log = logging.getLogger("al_simulation")
STRATEGIES = ("uncertainty", "diverse", "random")


@dataclass
class Item:
    key: int
    image: object  # PIL image, resized so its longer side is image_size
    label: str  # image-level label (background for negatives)
    boxes: list  # (class, x1, y1, x2, y2) in the resized frame


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["demo", "kangaroo"], default="demo")
    p.add_argument(
        "--kangaroo-dir", type=Path, default=REPO.parent / "shared" / "data" / "kangaroo"
    )
    p.add_argument("--n-images", type=int, default=300, help="demo images generated")
    p.add_argument("--image-size", type=int, default=320, help="longer image side (px)")
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--seed-labels", type=int, default=20, help="labelled images at the start")
    p.add_argument("--rounds", type=int, default=5, help="rounds of --batch new labels")
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3, help="seeds per strategy (>= 3 for spread)")
    p.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="run seeds first-seed .. seeds-1 (to add runs to an --out folder; "
        "then --plot-only merges its runs/)",
    )
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--score", default="least_confidence")
    p.add_argument("--aggregate", default="max")
    p.add_argument("--iters-per-round", type=int, default=200)
    p.add_argument(
        "--seconds-per-round",
        type=float,
        default=None,
        help="a wall-clock budget per round instead of --iters-per-round",
    )
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument(
        "--lr",
        type=float,
        default=0.01,
        help="0.02 for the earlier from-scratch runs; pretrained lite0 diverged there",
    )
    p.add_argument("--clip-grad-norm", type=float, default=10.0, help="0: no clipping")
    p.add_argument(
        "--lr-decay",
        choices=["cosine", "none"],
        default="cosine",
        help="learning rate within a round (cosine needs --iters-per-round)",
    )
    p.add_argument("--rois", type=int, default=64, help="RoIs sampled per image in training")
    p.add_argument("--backbone", default="efficientnet_lite0", help="`wb backbones` lists them")
    p.add_argument(
        "--weights",
        default="auto",
        help="auto | imagenet | none | PATH (earlier results: mobilenet_v3 with none)",
    )
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="a fresh model every round (default: continue the previous round's)",
    )
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    p.add_argument("--out", type=Path, default=Path("al-simulation"))
    p.add_argument(
        "--plot-only",
        type=Path,
        default=None,
        metavar="RESULTS",
        help="only redraw curves.png and table.md from an earlier results.json, or "
        "from the runs/ of an --out folder whose run was cut short",
    )
    p.add_argument("--title", default=None, help="--plot-only: the plot's title")
    return p


# ---- data --------------------------------------------------------------------------
def _resized(img, boxes, size: int):
    from PIL import Image

    scale = size / max(img.size)
    if abs(scale - 1) > 1e-6:
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR
        )
    return img, [(c, x1 * scale, y1 * scale, x2 * scale, y2 * scale) for c, x1, y1, x2, y2 in boxes]


def load_demo(n_images: int, size: int, work: Path, negatives_only: bool = False):
    from workbench.demo_data import generate_demo_data
    from workbench.images import open_image
    from workbench.taxonomy import BACKGROUND, Taxonomy

    tax = Taxonomy.default()
    generate_demo_data(work, seed=0, n_images=n_images)
    coco = json.loads((work / "annotations.json").read_text())
    planted = json.loads((work / "planted.json").read_text())
    copies = {pair[1] for pairs in planted.values() for pair in pairs}
    cats = {c["id"]: tax.species_of(c["name"]) for c in coco["categories"]}
    anns: dict[int, list] = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        anns.setdefault(a["image_id"], []).append((cats[a["category_id"]], x, y, x + w, y + h))
    items = []
    for im in coco["images"]:
        if im["file_name"] in copies:
            continue
        label = BACKGROUND if im["label"] == BACKGROUND else tax.species_of(im["label"])
        if negatives_only and label != BACKGROUND:
            continue
        img, boxes = _resized(open_image(work / im["file_name"]), anns.get(im["id"], []), size)
        items.append(Item(len(items), img, label, boxes))
    return items, tax.classes("species"), tax


def load_kangaroo(root: Path, size: int, work: Path, n_demo: int):
    from workbench.formats.voc import read_voc
    from workbench.images import UnreadableImage, open_image
    from workbench.taxonomy import Taxonomy

    if not (root / "annots").is_dir():
        raise SystemExit(f"kangaroo data not found under {root} (need annots/ and images/)")
    items, unreadable = [], []
    for rec in read_voc(root / "annots", root / "images"):
        boxes = [(b.label, b.x1, b.y1, b.x2, b.y2) for b in rec.boxes]
        try:
            img = open_image(rec.path)
        except UnreadableImage as exc:  # the real set holds a truncated JPEG
            unreadable.append(f"{Path(rec.path).name} ({exc.reason})")
            continue
        img, boxes = _resized(img, boxes, size)
        items.append(Item(len(items), img, "kangaroo", boxes))
    if unreadable:
        log.warning(
            "left out %d unreadable kangaroo images: %s", len(unreadable), ", ".join(unreadable)
        )
    negatives, _, _ = load_demo(n_demo, size, work, negatives_only=True)
    for neg in negatives[: max(1, len(items) // 4)]:
        items.append(Item(len(items), neg.image, neg.label, []))
    return items, ["kangaroo"], Taxonomy.flat(["kangaroo"])


# ---- model -------------------------------------------------------------------------
def train_config(args):
    from workbench.detection.train import TrainConfig

    config, _ = TrainConfig(
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        box_batch_size_per_image=args.rois,
        batch_size=args.train_batch,
        lr=args.lr,
        regimen="scratch",
    ).resolved()
    return config


def lr_factor(step: int, n_warm: int, args) -> float:
    """Linear warm-up, then (``--lr-decay cosine``) a cosine down to 5 % of ``--lr`` by the
    round's last step: each round's model is measured at a low learning rate, not in the
    middle of large SGD steps, which keeps the noise between seeds down."""
    warm = min(1.0, (step + 1) / n_warm)
    if args.lr_decay != "cosine" or args.seconds_per_round:
        return warm
    t = min(1.0, step / max(1, args.iters_per_round - 1))
    return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def train_round(
    model, items: list[Item], classes: list[str], args, device, seed: int, warmup: bool
) -> int:
    """A fixed budget of SGD steps on the labelled items (horizontal flips)."""
    from torchvision.transforms.functional import to_tensor

    index = {c: i + 1 for i, c in enumerate(classes)}
    cache = {it.key: to_tensor(it.image) for it in items}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    n_warm = 50 if warmup else 1
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(i, n_warm, args))
    rng = random.Random(seed)
    model.train()
    deadline = time.monotonic() + args.seconds_per_round if args.seconds_per_round else None
    steps = 0
    while True:
        if deadline is None and steps >= args.iters_per_round:
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        picks = [rng.choice(items) for _ in range(args.train_batch)]
        images, targets = [], []
        for it in picks:
            img = cache[it.key]
            boxes = torch.tensor([b[1:] for b in it.boxes], dtype=torch.float32).reshape(-1, 4)
            labels = torch.tensor([index[b[0]] for b in it.boxes], dtype=torch.int64)
            if rng.random() < 0.5:
                w = img.shape[-1]
                img = img.flip(-1)
                boxes = boxes[:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor(
                    [w, 0, w, 0]
                )
            images.append(img.to(device))
            targets.append({"boxes": boxes.to(device), "labels": labels.to(device)})
        losses = model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {steps}: lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, args.clip_grad_norm)
        opt.step()
        sched.step()
        steps += 1
    return steps


def as_predictor(model, classes: list[str], config, folder: Path, device):
    """The trained weights as a ``workbench.detection.predict.Predictor`` (the code `wb
    prioritize` runs: detections with full class probabilities, pooled features)."""
    from workbench.detection.predict import Predictor

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "weights.pt")
    (folder / "config.json").write_text(
        json.dumps(
            {
                "version": folder.name,
                "classes": classes,
                "level": "species",
                "train": config.to_dict(),
            }
        )
    )
    return Predictor(folder, device=device, score_threshold=0.01, batch_size=16)


def evaluate(predictor, test: list[Item], classes: list[str]) -> float:
    from workbench.detection.metrics import evaluate_detections

    dets = predictor.predict([it.image for it in test])
    gt = {
        it.key: [
            {"label": c, "x1": x1, "y1": y1, "x2": x2, "y2": y2} for c, x1, y1, x2, y2 in it.boxes
        ]
        for it in test
    }
    preds = {it.key: [d.to_dict() for d in ds] for it, ds in zip(test, dets)}
    labels = {it.key: it.label for it in test}
    return float(evaluate_detections(gt, preds, classes=classes, image_labels=labels).mAP50 or 0.0)


def choose(
    strategy: str, predictor, pool: list[Item], classes, products, args, seed: int
) -> list[int]:
    ids = [it.key for it in pool]
    if strategy == "random":
        return select_batch(ids, [0.0] * len(ids), SelectionConfig("random", args.batch, seed=seed))
    cfg = UncertaintyConfig(score=args.score, aggregate=args.aggregate)
    dets = predictor.predict([it.image for it in pool])
    unc = [
        score_image([d.to_dict() for d in ds], cfg, it.label, classes, products).uncertainty
        for it, ds in zip(pool, dets)
    ]
    feats = predictor.features([it.image for it in pool]) if strategy == "diverse" else None
    return select_batch(ids, unc, SelectionConfig(strategy, args.batch, seed=seed), feats)


# ---- one run -------------------------------------------------------------------------
def run_one(job: tuple) -> dict:
    strategy, seed, args, data = job
    from workbench.detection.train import build_model

    if not logging.getLogger().handlers:  # a spawned worker
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    items, classes, tax, test_keys = data
    products = product_classes(classes, tax)
    by_key = {it.key: it for it in items}
    test = [by_key[k] for k in test_keys]
    pool_keys = sorted(set(by_key) - set(test_keys))
    labelled = random.Random(1000 + seed).sample(pool_keys, min(args.seed_labels, len(pool_keys)))
    config = train_config(args)
    curve, t0 = [], time.monotonic()
    model = None
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds + 1):
            if model is None or args.from_scratch:
                torch.manual_seed(seed)
                model = build_model(config, classes).to(device)
            steps = train_round(
                model,
                [by_key[k] for k in labelled],
                classes,
                args,
                device,
                seed * 100 + rnd,
                warmup=rnd == 0 or args.from_scratch,
            )
            predictor = as_predictor(model, classes, config, Path(tmp) / f"r{rnd}", device)
            mAP = evaluate(predictor, test, classes)
            curve.append({"round": rnd, "labels": len(labelled), "mAP50": mAP, "steps": steps})
            _save_run(args.out, strategy, seed, curve, t0)
            log.info(
                "%s seed %d round %d: %d labels, mAP@0.5 %.3f (%d steps, %.0f s)",
                strategy,
                seed,
                rnd,
                len(labelled),
                mAP,
                steps,
                time.monotonic() - t0,
            )
            if rnd == args.rounds:
                break
            chosen = set(labelled)
            pool = [by_key[k] for k in pool_keys if k not in chosen]
            if not pool:
                break
            labelled += choose(strategy, predictor, pool, classes, products, args, seed * 100 + rnd)
            del predictor
    return _save_run(args.out, strategy, seed, curve, t0)


def _save_run(out: Path, strategy: str, seed: int, curve: list, t0: float) -> dict:
    """Every round on disk at once: a run cut short by a time limit keeps its rounds."""
    run = {
        "strategy": strategy,
        "seed": seed,
        "curve": curve,
        "seconds": round(time.monotonic() - t0, 1),
    }
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "runs" / f"{strategy}-{seed}.json").write_text(json.dumps(run))
    return run


# ---- summary -------------------------------------------------------------------------
def labels_to_reach(labels: list[float], values: list[float], target: float) -> float | None:
    """The first label count at which the curve reaches ``target`` (linear between rounds)."""
    for i, (n, v) in enumerate(zip(labels, values)):
        if v >= target - 1e-12:
            if i == 0:
                return float(n)
            n0, v0 = labels[i - 1], values[i - 1]
            return float(n0 + (n - n0) * (target - v0) / (v - v0)) if v != v0 else float(n)
    return None


def summarise(runs: list[dict]) -> dict:
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["strategy"], []).append(r)
    curves = {}
    # a run cut short: every strategy is compared up to the round all its runs reached
    n = min((len(r["curve"]) for r in runs), default=0)
    for s, rs in by.items():
        labels = [rs[0]["curve"][i]["labels"] for i in range(n)]
        vals = np.array([[r["curve"][i]["mAP50"] for i in range(n)] for r in rs])
        curves[s] = {
            "labels": labels,
            "mean": vals.mean(0).tolist(),
            "min": vals.min(0).tolist(),
            "max": vals.max(0).tolist(),
            "seeds": len(rs),
        }
    table = {}
    if "random" in curves:
        target = curves["random"]["mean"][-1]
        base = labels_to_reach(curves["random"]["labels"], curves["random"]["mean"], target)
        # Paired by seed (every strategy starts from the same seed set for a seed): the
        # mean mAP@0.5 over the rounds after the seed round (the area under the learning
        # curve), and in how many seeds it beats random's.
        area = {
            s: {
                r["seed"]: float(np.mean([c["mAP50"] for c in r["curve"][1:n]] or [0.0]))
                for r in rs
            }
            for s, rs in by.items()
        }
        for s, c in curves.items():
            need = labels_to_reach(c["labels"], c["mean"], target)
            paired = [seed for seed in area[s] if seed in area["random"]]
            table[s] = {
                "target_mAP50": target,
                "labels_needed": need,
                "ratio_to_random": (need / base) if need is not None and base else None,
                "final_mAP50": c["mean"][-1],
                "area_per_seed": [area[s][seed] for seed in sorted(area[s])],
                "beats_random": sum(area[s][seed] > area["random"][seed] for seed in paired),
                "paired_seeds": len(paired),
            }
    return {"curves": curves, "table": table}


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s, c in summary["curves"].items():
        ax.plot(c["labels"], c["mean"], marker="o", label=f"{s} (mean of {c['seeds']} seeds)")
        ax.fill_between(c["labels"], c["min"], c["max"], alpha=0.2)
    ax.set_xlabel("labelled images")
    ax.set_ylabel("test mAP@0.5")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table_markdown(summary: dict) -> str:
    rows = [
        "| strategy | final mAP@0.5 (mean) | labels to reach random's final "
        "| ratio to random | mean mAP@0.5 over rounds, per seed | beats random (paired seeds) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s, t in summary["table"].items():
        need = "not reached" if t["labels_needed"] is None else f"{t['labels_needed']:.1f}"
        ratio = "n/a" if t["ratio_to_random"] is None else f"{t['ratio_to_random']:.2f}"
        area = " / ".join(f"{a:.3f}" for a in t.get("area_per_seed", []))
        wins = (
            f"{t['beats_random']} of {t['paired_seeds']}"
            if s != "random" and "beats_random" in t
            else "-"
        )
        rows.append(f"| {s} | {t['final_mAP50']:.3f} | {need} | {ratio} | {area} | {wins} |")
    return "\n".join(rows)


def replot(results: Path, out: Path, title: str | None = None) -> dict:
    """Redraw from results.json, or from the runs/ folder of a run cut short (its
    curves end at the round every seed reached)."""
    if results.is_dir():
        runs = [json.loads(f.read_text()) for f in sorted((results / "runs").glob("*.json"))]
        data = {
            "setup": {"dataset": f"{results.name} (partial: {len(runs)} runs)"},
            **summarise(runs),
        }
        (out / "results-partial.json").parent.mkdir(parents=True, exist_ok=True)
        (out / "results-partial.json").write_text(json.dumps({**data, "runs": runs}, indent=1))
    else:
        data = json.loads(results.read_text())
        if data.get("runs"):  # summarised again: older files lack newer columns
            data.update(summarise(data["runs"]))
    summary = {"curves": data["curves"], "table": data["table"]}
    out.mkdir(parents=True, exist_ok=True)
    plot(summary, out / "curves.png", title or data["setup"].get("title", data["setup"]["dataset"]))
    md = table_markdown(summary)
    (out / "table.md").write_text(md + "\n")
    print(md)
    return summary


def main(args) -> dict:
    if args.plot_only:
        return replot(args.plot_only, args.out, args.title)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    torch.set_num_threads(args.threads)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise SystemExit(
            f"unknown strategies {sorted(unknown)}; choose from {', '.join(STRATEGIES)}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset == "demo":
            items, classes, tax = load_demo(args.n_images, args.image_size, Path(tmp))
        else:
            items, classes, tax = load_kangaroo(
                args.kangaroo_dir, args.image_size, Path(tmp), args.n_images
            )
    keys = [it.key for it in items]
    random.Random(0).shuffle(keys)
    test_keys = sorted(keys[: max(1, round(len(keys) * args.test_fraction))])
    log.info(
        "%s: %d images (%d test, %d pool), classes %s",
        args.dataset,
        len(items),
        len(test_keys),
        len(items) - len(test_keys),
        classes,
    )
    data = (items, classes, tax, test_keys)
    jobs = [
        (s, seed, args, data) for seed in range(args.first_seed, args.seeds) for s in strategies
    ]
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            runs = pool.map(run_one, jobs)
    else:
        runs = [run_one(j) for j in jobs]
    summary = summarise(runs)
    setup = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    setup.update(
        images=len(items),
        test_images=len(test_keys),
        classes=classes,
        torch=torch.__version__,
        gpu=torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        seconds=round(time.monotonic() - t0, 1),
    )
    budget = (
        f"{args.seconds_per_round:g} s"
        if args.seconds_per_round
        else f"{args.iters_per_round} iters"
    )
    title = (
        f"{args.dataset}: {len(test_keys)} test images, {args.seeds} seeds, {budget}/round, "
        f"{args.image_size}px, {setup['gpu'] or args.device}"
    )
    setup["title"] = title
    (args.out / "results.json").write_text(
        json.dumps({"setup": setup, "runs": runs, **summary}, indent=1)
    )
    try:
        plot(summary, args.out / "curves.png", title)
    except ImportError as exc:  # a bare GPU image may lack matplotlib: plot later
        log.warning("no plot (%s); draw it with --plot-only %s", exc, args.out / "results.json")
    md = table_markdown(summary)
    (args.out / "table.md").write_text(md + "\n")
    print(md)
    print(f"total {setup['seconds']:.0f} s; results in {args.out}")
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main(get_args_parser().parse_args())
