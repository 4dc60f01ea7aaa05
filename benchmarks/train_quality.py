"""mAP@0.5 reached from scratch within a fixed time budget, on the built-in demo data
(and optionally ../shared/data/kangaroo), through the real `retrain` pipeline.

    .venv/bin/python benchmarks/train_quality.py --minutes 8 --backbone mobilenet_v3
    python3 benchmarks/train_quality.py --device cuda --minutes 5 --backbone densenet121

Prints one table row per data set: images, epochs, wall time, test mAP@0.5 / mAP / mAR@100,
and images/s of training. Uses CUDA (with AMP) when asked and available.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.detection.retrain import RetrainOptions, retrain  # noqa: E402
from workbench.detection.train import TrainConfig  # noqa: E402
from workbench.ingest import ingest  # noqa: E402
from workbench.taxonomy import Taxonomy  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402


def run(name: str, tax: Taxonomy, source: Path, fmt: str, args) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"wb-quality-{name}-"))
    ws = Workspace.create(root / "ws", tax)
    with ws.open_catalog() as cat:
        ingest(ws, cat, source, fmt)
        n = len(cat.images(status="active", annotated=True))
        cfg = TrainConfig(backbone=args.backbone, level="species", regimen="scratch",
                          image_size=args.image_size, batch_size=args.batch_size,
                          max_minutes=args.minutes, max_epochs=args.max_epochs,
                          patience=args.patience, lr=args.lr, seed=0)
        t0 = time.perf_counter()
        events = []
        report = retrain(ws, cat, RetrainOptions(train=cfg, promote="always",
                                                  skip={"pull", "predict", "refresh"}),
                         on_event=lambda e: events.append(e) or (
                             print(f"  {name}: {e.get('message', e)}", flush=True)
                             if e.get("event") in ("step", "epoch") else None))
        wall = time.perf_counter() - t0
        version = report.versions[-1]
        m = cat.model(version)["metrics"] or {}
    return {"data": name, "images": n, "version": version, "wall_s": round(wall),
            "mAP50": m.get("mAP50"), "mAP": m.get("mAP"), "mAR100": m.get("mAR100"),
            "epochs": m.get("epochs"), "best_epoch": m.get("best_epoch")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--backbone", default="mobilenet_v3")
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=15)
    ap.add_argument("--image-size", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--n-images", type=int, default=300)
    ap.add_argument("--kangaroo", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/kangaroo")
    args = ap.parse_args()
    import torch

    if args.device == "cpu":
        torch.cuda.is_available = lambda: False  # force the CPU path for the whole run
    print(f"torch {torch.__version__}, cuda={torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
    from workbench.demo_data import generate_demo_data

    rows = []
    demo = Path(tempfile.mkdtemp(prefix="wb-demo-data-"))
    generate_demo_data(demo, seed=0, n_images=args.n_images)
    rows.append(run("demo", Taxonomy.default(), demo / "annotations.json", "coco", args))
    if args.kangaroo.is_dir():
        rows.append(run("kangaroo", Taxonomy.flat(["kangaroo"]), args.kangaroo, "voc", args))
    else:
        print(f"skipping kangaroo: {args.kangaroo} not found")
    print(f"\nbackbone={args.backbone} image_size={args.image_size} budget={args.minutes} min")
    print(f"{'data':10} {'images':>6} {'epochs':>6} {'wall s':>7} {'mAP50':>7} {'mAP':>7} {'mAR100':>7}")
    for r in rows:
        f = lambda v: "   n/a" if v is None else f"{v:7.3f}"  # noqa: E731
        print(f"{r['data']:10} {r['images']:>6} {str(r['epochs']):>6} {r['wall_s']:>7} "
              f"{f(r['mAP50'])} {f(r['mAP'])} {f(r['mAR100'])}")


if __name__ == "__main__":
    main()
