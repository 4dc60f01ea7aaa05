"""How good a `wb classify` classifier gets in a fixed epoch budget on this CPU: the binary
kangaroo-vs-non-wildlife task, regimen vs regimen over seeds, and with vs without
background negatives on an out-of-distribution set, side by side.

Data (built once, in a temp dir; no user image is changed):

- ``kangaroo``: the photos of ``--kangaroo`` (VOC data set, its ``images/``; the truncated
  00090.jpg is catalogued as unreadable and takes no part), the positive class.
- ``non_wildlife``: the demo data set's look-alike class (``generate_demo_data``,
  ``--n-demo`` images, seed 0), the negative class ``other``.
- ``background``: the same demo set's background-only scenes; they join ``other`` only
  with ``--negatives`` (the study's data_bg).

The three groups are copied into one folder per class and ingested with ``--format
folders`` into one workspace; every run trains into that workspace's registry, so all
runs share the catalog's sticky splits and are scored on the same test images.

Test sets, per run:

- ``catalog-test``: the catalog's test split (in-distribution).
- ``ood``: out of distribution, never seen in training: the kangaroo test-split photos
  transformed (grey scale, a 70 % centre crop, mirrored, JPEG quality 30) as
  ``kangaroo``; as ``other``, the demo's wildlife-product images (classes no run trains
  on) and background scenes of a second demo set (seed 1), ``--n-ood`` of each.
- ``ood-photo-bg``: the same transformed kangaroo photos against real photo backgrounds:
  the largest kangaroo-free strip (``free_strip``, outside every VOC box) of each
  test-split kangaroo photo, as ``other``.

Runs (each: ``train_classifier`` then ``evaluate_classifier``, the library the CLI calls):

1. every ``--regimens`` entry x ``--seeds``, without negatives;
2. ``transfer`` with ``--negatives`` x ``--seeds`` (without: the runs of 1).

The budget is ``--epochs`` (the same work on a busy machine as on a quiet one);
``--max-minutes`` only caps a run. One run at a time, one torch thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/classify_quality.py --seeds 3 --epochs 5 \\
        --out benchmarks/results/classify_quality_kangaroo_cpu.json

Writes every run to ``--out`` (JSON, kept as runs finish: re-running skips those done;
``--summary-only`` prints the tables of ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

POSITIVE = "kangaroo"
GOAL_ACCURACY = 0.95
GOAL_SECONDS = 300.0


# --- pure helpers (tests/unit/test_benchmark_helpers.py) --------------------------------


def plan_runs(regimens: list[str], seeds: int, negatives: bool = True) -> list[dict]:
    """Every (regimen, negatives, seed) to train, seed by seed (a cut-short run still has
    every kind for its first seeds): the regimens without negatives, then transfer with
    negatives (its without-negatives twin is among the regimens)."""
    runs = []
    for s in range(seeds):
        runs += [{"regimen": r, "negatives": False, "seed": s} for r in regimens]
        if negatives:
            runs.append({"regimen": "transfer", "negatives": True, "seed": s})
    return runs


def run_key(run: dict) -> tuple[str, bool, int]:
    return (run["regimen"], bool(run["negatives"]), int(run["seed"]))


def spread(values: list[float]) -> dict:
    """Mean, min, max and sample standard deviation (0 for one value)."""
    return {
        "mean": statistics.mean(values),
        "min": min(values),
        "max": max(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def group_rows(runs: list[dict], by: tuple[str, ...], test_set: str) -> list[dict]:
    """One row per distinct ``by`` values (in first-seen order): n runs, and the spread of
    accuracy, f-score and training seconds on ``test_set`` over the group's runs."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        if test_set in r["sets"]:
            groups.setdefault(tuple(r[k] for k in by), []).append(r)
    rows = []
    for key, rs in groups.items():
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": len(rs),
                "accuracy": spread([r["sets"][test_set]["accuracy"] for r in rs]),
                "f_score": spread([r["sets"][test_set]["f_score"] for r in rs]),
                "train_seconds": spread([r["train_seconds"] for r in rs]),
                "cpu_seconds": spread([r.get("cpu_seconds", r["train_seconds"]) for r in rs]),
                "epochs_run": spread([r["epochs_run"] for r in rs]),
            }
        )
    return rows


def with_ratios(rows: list[dict], metric: str = "accuracy") -> list[dict]:
    """Each row's mean ``metric`` over the first row's (the baseline), as ``ratio``."""
    if not rows:
        return rows
    base = rows[0][metric]["mean"]
    return [{**r, "ratio": (r[metric]["mean"] / base) if base else None} for r in rows]


def goal_met(run: dict, seconds: str = "train_seconds") -> bool:
    """The issue's goal: in-distribution accuracy >= 0.95 within 5 minutes of training
    (``seconds``: the run's wall-clock ``train_seconds``, or ``cpu_seconds``)."""
    s = run["sets"].get("catalog-test")
    return bool(s) and s["accuracy"] >= GOAL_ACCURACY and run[seconds] <= GOAL_SECONDS


def free_strip(
    size: tuple[int, int], boxes: list[tuple[float, float, float, float]], min_side: int = 48
) -> tuple[int, int, int, int] | None:
    """The largest of the four strips of an image (left, right, above, below all its
    ``boxes``, xyxy) that touches no box, or None when none is ``min_side`` on each side."""
    w, h = size
    if not boxes:
        return (0, 0, w, h)
    x0 = int(min(b[0] for b in boxes))
    y0 = int(min(b[1] for b in boxes))
    x1 = int(max(b[2] for b in boxes)) + 1
    y1 = int(max(b[3] for b in boxes)) + 1
    strips = [(0, 0, x0, h), (x1, 0, w, h), (0, 0, w, y0), (0, y1, w, h)]
    ok = [r for r in strips if r[2] - r[0] >= min_side and r[3] - r[1] >= min_side]
    return max(ok, key=lambda r: (r[2] - r[0]) * (r[3] - r[1])) if ok else None


def _fmt(s: dict) -> str:
    return f"{s['mean']:.3f} ({s['min']:.3f}–{s['max']:.3f}, sd {s['sd']:.3f})"


def table(rows: list[dict], by: tuple[str, ...], title: str) -> str:
    head = " | ".join(by)
    lines = [
        f"### {title}",
        "",
        f"| {head} | runs | accuracy mean (min–max, sd) | ratio to first | f-score mean "
        "(min–max, sd) | train s mean | CPU s mean | epochs run |",
        "| " + " | ".join("---" for _ in range(len(by) + 7)) + " |",
    ]
    for r in with_ratios(rows):
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        keys = " | ".join(str(r[k]) for k in by)
        lines.append(
            f"| {keys} | {r['n']} | {_fmt(r['accuracy'])} | {ratio} | {_fmt(r['f_score'])} | "
            f"{r['train_seconds']['mean']:.0f} | {r['cpu_seconds']['mean']:.0f} | "
            f"{r['epochs_run']['mean']:.1f} |"
        )
    return "\n".join(lines)


def summarise(runs: list[dict]) -> str:
    plain = [r for r in runs if not r["negatives"]]
    transfer = [r for r in runs if r["regimen"] == "transfer"]
    goal = [r for r in plain if r["regimen"] == "transfer"]
    met = sum(goal_met(r) for r in goal)
    met_cpu = sum(goal_met(r, "cpu_seconds") for r in goal if "cpu_seconds" in r)
    out = [
        table(
            group_rows(plain, ("regimen",), "catalog-test"),
            ("regimen",),
            "Regimens, in-distribution (catalog-test), no negatives",
        ),
        "",
        table(
            group_rows(plain, ("regimen",), "ood"),
            ("regimen",),
            "Regimens, out-of-distribution (ood), no negatives",
        ),
        "",
        table(
            group_rows(transfer, ("negatives",), "catalog-test"),
            ("negatives",),
            "transfer without vs with background negatives, in-distribution",
        ),
        "",
        table(
            group_rows(transfer, ("negatives",), "ood"),
            ("negatives",),
            "transfer without vs with background negatives, out-of-distribution (ood)",
        ),
        "",
        table(
            group_rows(transfer, ("negatives",), "ood-photo-bg"),
            ("negatives",),
            "transfer without vs with background negatives, kangaroo vs photo backgrounds",
        ),
        "",
        f"Goal (transfer, catalog-test accuracy >= {GOAL_ACCURACY} within "
        f"{GOAL_SECONDS:.0f} s of training): {met} of {len(goal)} seeds by wall clock, "
        f"{met_cpu} of {len(goal)} by CPU seconds (the time on an unshared core)",
    ]
    return "\n".join(out)


# --- data ---------------------------------------------------------------------------------


def default_kangaroo() -> Path:
    """The shared kangaroo data set beside the checkout (a worktree sits one level deeper)."""
    for base in (REPO.parent, REPO.parent.parent):
        if (base / "shared/data/kangaroo").is_dir():
            return base / "shared/data/kangaroo"
    return REPO.parent / "shared/data/kangaroo"


def _copy_images(src: Path, dst: Path, names: list[Path] | None = None) -> int:
    from workbench.images import is_image_file

    dst.mkdir(parents=True, exist_ok=True)
    files = names if names is not None else sorted(p for p in src.iterdir() if is_image_file(p))
    for f in files:
        shutil.copyfile(f, dst / f.name)
    return len(files)


def build_sources(args, scratch: Path) -> tuple[Path, Path, Path]:
    """(folders to ingest, the demo set, the second demo set for ood backgrounds)."""
    from workbench.demo_data import generate_demo_data

    demo, demo2 = scratch / "demo", scratch / "demo-ood"
    generate_demo_data(demo, seed=0, n_images=args.n_demo)
    generate_demo_data(demo2, seed=1, n_images=max(60, args.n_ood * 10))
    src = scratch / "folders"
    _copy_images(args.kangaroo / "images", src / POSITIVE)
    _copy_images(demo / "images" / "non_wildlife", src / "non_wildlife")
    _copy_images(demo / "images" / "background", src / "background")
    return src, demo, demo2


def voc_boxes(xml: Path) -> list[tuple[float, float, float, float]]:
    import xml.etree.ElementTree as ET

    boxes = []
    for b in ET.parse(xml).iter("bndbox"):
        boxes.append(tuple(float(b.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")))
    return boxes


def ood_transform(img):
    """A kangaroo photo as the ood set holds it: grey, a 70 % centre crop, mirrored."""
    from PIL import ImageOps

    w, h = img.size
    dx, dy = int(w * 0.15), int(h * 0.15)
    img = img.crop((dx, dy, w - dx, h - dy))
    return ImageOps.mirror(ImageOps.grayscale(img)).convert("RGB")


def build_ood(ws, cat, demo: Path, demo2: Path, args, out: Path) -> dict:
    """The ood test set (see the module's docstring); returns its counts."""
    from workbench.classify.config import ClassifyConfig
    from workbench.classify.dataset import catalog_images
    from workbench.images import is_image_file, open_image

    # deal the sticky splits of every image that can take part (background included)
    items = catalog_images(cat, ws.taxonomy, ClassifyConfig(positive=[POSITIVE], negatives=True))
    test_kangaroo = [i for i in items if i.split == "test" and i.label == POSITIVE]
    (out / POSITIVE).mkdir(parents=True, exist_ok=True)
    for i in test_kangaroo:
        ood_transform(open_image(i.path)).save(out / POSITIVE / Path(i.path).name, quality=30)
    rng = random.Random(0)
    wild = sorted(
        p
        for d in (demo / "images").iterdir()
        if d.is_dir() and d.name not in ("non_wildlife", "background")
        for p in d.iterdir()
        if is_image_file(p)
    )
    bg = sorted(p for p in (demo2 / "images" / "background").iterdir() if is_image_file(p))
    picked = rng.sample(wild, min(args.n_ood, len(wild))) + bg[: args.n_ood]
    other = out / "other"
    other.mkdir(parents=True, exist_ok=True)
    for n, p in enumerate(picked):
        shutil.copyfile(p, other / f"{n:04d}-{p.parent.name}-{p.name}")
    # a second ood set: the same kangaroo photos against real photo backgrounds, the
    # kangaroo-free strips of the test-split photos (VOC boxes in annots/)
    photo_bg = out.parent / "ood-photo-bg"
    shutil.copytree(out / POSITIVE, photo_bg / POSITIVE)
    (photo_bg / "other").mkdir(parents=True)
    n_bg = 0
    for i in test_kangaroo:
        xml = args.kangaroo / "annots" / (Path(i.path).stem + ".xml")
        img = open_image(i.path)
        strip = free_strip(img.size, voc_boxes(xml)) if xml.is_file() else None
        if strip:
            img.crop(strip).save(photo_bg / "other" / Path(i.path).name, quality=90)
            n_bg += 1
    return {
        "photo_background_strips": n_bg,
        "kangaroo_transformed": len(test_kangaroo),
        "wildlife_products": min(args.n_ood, len(wild)),
        "backgrounds_seed1": min(args.n_ood, len(bg)),
    }


# --- runs ---------------------------------------------------------------------------------


def run_one(ws, cat, run: dict, args, ood: Path) -> dict:
    from workbench.classify.config import ClassifyConfig
    from workbench.classify.evaluate import evaluate_classifier
    from workbench.classify.train import train_classifier

    config = ClassifyConfig(
        regimen=run["regimen"],
        positive=[POSITIVE],
        negatives=run["negatives"],
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else ClassifyConfig.lr,
        patience=args.patience,
        image_size=args.image_size,
        seed=run["seed"],
        head_epochs=args.head_epochs
        if args.head_epochs is not None
        else ClassifyConfig.head_epochs,
        max_minutes=args.max_minutes,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    mv = train_classifier(ws, cat, config)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ev = evaluate_classifier(
        ws, cat, mv.version, {"ood": ood, "ood-photo-bg": ood.parent / "ood-photo-bg"}
    )
    m = mv.metrics
    return {
        **run,
        "version": mv.version,
        "train_seconds": m["train_seconds"],
        "wall_s": round(wall, 1),
        "cpu_seconds": round(cpu, 1),  # this process's CPU time: what a free core would take
        "epochs_run": m["epochs_run"],
        "best_epoch": m.get("best_epoch"),  # the epoch whose weights were kept
        "val_accuracy": m["val_accuracy"],
        "n_train": m["n_train"],
        "n_val": m["n_val"],
        "parameters": m["parameters"],
        "sets": {
            row["set"]: {
                k: row[k]
                for k in ("n", "accuracy", "precision", "recall", "f_score", "ms_per_image")
                if k in row
            }
            for row in ev["sets"]
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimens", default="transfer,combi,scratch")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5, help="the budget: epochs per run")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the study's per phase")
    ap.add_argument("--lr", type=float, default=None, help="default: ClassifyConfig's")
    ap.add_argument(
        "--head-epochs", type=int, default=2, help="combi: last-layer epochs (study: 10 of 100)"
    )
    ap.add_argument("--patience", type=int, default=None, help="default: the study's")
    ap.add_argument("--max-minutes", type=float, default=15.0, help="a safety cap per run")
    ap.add_argument("--no-negatives", action="store_true", help="skip the negatives runs")
    ap.add_argument("--n-demo", type=int, default=1500, help="demo images generated")
    ap.add_argument("--n-ood", type=int, default=30, help="ood 'other' images of each kind")
    ap.add_argument("--kangaroo", type=Path, default=default_kangaroo())
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--out", type=Path, default=Path("classify-quality.json"))
    ap.add_argument("--summary-only", action="store_true", help="print the tables of --out")
    args = ap.parse_args()
    done = json.loads(args.out.read_text())["runs"] if args.out.is_file() else []
    if not args.summary_only:
        if not (args.kangaroo / "images").is_dir():
            sys.exit(f"no kangaroo data at {args.kangaroo}: pass --kangaroo DIR (VOC, images/)")
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
        import torch

        torch.set_num_threads(args.threads)
        from workbench.ingest import ingest
        from workbench.taxonomy import Taxonomy
        from workbench.workspace import Workspace

        regimens = [r.strip() for r in args.regimens.split(",") if r.strip()]
        have = {run_key(r) for r in done}
        todo = [
            r
            for r in plan_runs(regimens, args.seeds, not args.no_negatives)
            if run_key(r) not in have
        ]
        scratch = Path(tempfile.mkdtemp(prefix="wb-clsq-"))
        try:
            t0 = time.perf_counter()
            src, demo, demo2 = build_sources(args, scratch)
            ws = Workspace.create(scratch / "ws", Taxonomy.default())
            with ws.open_catalog() as cat:
                ingest(ws, cat, src, "folders", add_classes=True)
                ood = scratch / "ood"
                ood_counts = build_ood(ws, cat, demo, demo2, args, ood)
                print(
                    f"data ready in {time.perf_counter() - t0:.0f} s; ood: {ood_counts}; "
                    f"{len(todo)} runs to do ({len(have)} already in {args.out}), "
                    f"{args.epochs} epochs each",
                    flush=True,
                )
                for n, run in enumerate(todo, 1):
                    r = run_one(ws, cat, run, args, ood)
                    r["ood_counts"] = ood_counts
                    done.append(r)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(
                        json.dumps(
                            {"args": {k: str(v) for k, v in vars(args).items()}, "runs": done},
                            indent=1,
                        )
                    )
                    ind, o = r["sets"].get("catalog-test", {}), r["sets"]["ood"]
                    pb = r["sets"].get("ood-photo-bg", {})
                    print(
                        f"[{n}/{len(todo)}] {r['regimen']} negatives={r['negatives']} seed "
                        f"{r['seed']}: catalog-test acc {ind.get('accuracy', float('nan')):.3f} "
                        f"f {ind.get('f_score', float('nan')):.3f}, ood acc {o['accuracy']:.3f} "
                        f"f {o['f_score']:.3f}, photo-bg acc {pb.get('accuracy', float('nan')):.3f}; "
                        f"{r['epochs_run']} epochs (kept {r['best_epoch']}), "
                        f"{r['train_seconds']:.0f} s training ({r['cpu_seconds']:.0f} CPU s)",
                        flush=True,
                    )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(summarise(done))


if __name__ == "__main__":
    main()
