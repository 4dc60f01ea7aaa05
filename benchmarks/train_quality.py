"""Test mAP@0.5 a detector reaches in a fixed step budget, through the real `retrain`
pipeline: pretrained vs scratch, regimen vs regimen, several seeds, side by side.

Each run is one (data set, configuration, seed): a fresh workspace, ingest, `retrain`
with ``--max-epochs`` as the budget (the same number of steps on a busy machine as on a
quiet one; ``--max-minutes`` is only a safety cap), evaluation on the sticky test split
(the same split for every run of a data set: only the training seed changes). Runs go
``--jobs`` at a time, one thread each (two trainings with two threads each ran ~9x
slower per step on a 2-core machine).

A configuration is ``backbone:weights:regimen`` (weights ``imagenet`` | ``none`` | ``auto``;
regimen ``combi`` | ``finetune`` | ``scratch``). The first is the baseline: the table
gives each configuration's mean mAP@0.5 over seeds and its ratio to the baseline's.

    .venv/bin/python benchmarks/train_quality.py --data kangaroo,demo --seeds 3 --epochs 4 \\
        --configs efficientnet_lite0:none:scratch,efficientnet_lite0:imagenet:combi \\
        --jobs 2 --out benchmarks/results/train_quality_cpu.json
    python benchmarks/train_quality.py --device cuda --configs densenet121:none:scratch \\
        --epochs 30 --image-size 512 --jobs 1

Writes every run to ``--out`` (JSON, kept as runs finish: re-running skips those done).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _data_source(name: str, args, scratch: Path):
    from workbench.taxonomy import Taxonomy

    if name == "kangaroo":
        if not args.kangaroo.is_dir():
            return None
        return Taxonomy.flat(["kangaroo"]), args.kangaroo, "voc"
    demo = scratch / "demo-data"
    if not (demo / "annotations.json").is_file():
        from workbench.demo_data import generate_demo_data

        generate_demo_data(demo, seed=0, n_images=args.n_images)
    return Taxonomy.default(), demo / "annotations.json", "coco"


def run_one(data: str, config: str, seed: int, args_dict: dict, scratch: str) -> dict:
    """One training run in its own process (one thread)."""
    import torch

    torch.set_num_threads(args_dict["threads"])
    if args_dict["device"] == "cpu":
        torch.cuda.is_available = lambda: False
    from workbench.detection.engine import TrainingDiverged
    from workbench.detection.retrain import RetrainOptions, retrain
    from workbench.detection.train import TrainConfig
    from workbench.ingest import ingest
    from workbench.workspace import Workspace

    args = argparse.Namespace(**args_dict)
    tax, source, fmt = _data_source(data, args, Path(scratch))
    backbone, weights, regimen = config.split(":")
    root = Path(tempfile.mkdtemp(prefix=f"wb-quality-{data}-", dir=scratch))
    ws = Workspace.create(root / "ws", tax)
    with ws.open_catalog() as cat:
        ingest(ws, cat, source, fmt)
        cfg = TrainConfig(
            backbone=backbone,
            weights=weights,
            regimen=regimen,
            level="species",
            image_size=args.image_size,
            batch_size=args.batch_size,
            head_epochs=args.head_epochs,
            max_epochs=args.epochs,
            patience=args.patience or args.epochs,
            max_minutes=args.max_minutes,
            lr=args.lr,
            lr_cycles=args.lr_cycles,
            seed=seed,
        )
        t0 = time.perf_counter()
        try:
            report = retrain(
                ws,
                cat,
                RetrainOptions(train=cfg, promote="always", skip={"pull", "predict", "refresh"}),
            )
        except TrainingDiverged as exc:  # a result of this configuration, not a crash
            return {
                "data": data,
                "config": config,
                "seed": seed,
                "diverged": str(exc),
                "wall_s": round(time.perf_counter() - t0, 1),
                "mAP50": None,
                "mAP": None,
                "mAR100": None,
                "accuracy": None,
                "epochs": exc.epoch,
                "train_seconds": None,
            }
        wall = time.perf_counter() - t0
        m = cat.model(report.versions[-1])["metrics"] or {}
    return {
        "data": data,
        "config": config,
        "seed": seed,
        "wall_s": round(wall, 1),
        "mAP50": m.get("mAP50"),
        "mAP": m.get("mAP"),
        "mAR100": m.get("mAR100"),
        "accuracy": m.get("accuracy"),
        "epochs": m.get("epochs"),
        "best_epoch": m.get("best_epoch"),
        "test_images": m.get("test_images"),
        "stopped": m.get("stopped"),
        "train_seconds": m.get("train_seconds"),
    }


def summarise(runs: list[dict], configs: list[str], datasets: list[str]) -> str:
    lines = [
        "| data | configuration | seeds | diverged | mAP@0.5 mean | min–max | ratio to "
        "baseline | mAP mean | mAR@100 mean | train s mean |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for data in datasets:
        base = None
        for config in configs:
            every = [r for r in runs if r["data"] == data and r["config"] == config]
            rs = [r for r in every if not r.get("diverged")]  # a diverged run has no model
            diverged = len(every) - len(rs)
            if not rs:
                lines.append(
                    f"| {data} | {config} | {len(every)} | {diverged} | - | - | - | - | - | - |"
                )
                continue
            maps = [r["mAP50"] or 0.0 for r in rs]
            mean = statistics.mean(maps)
            if base is None:
                base = mean
            ratio = f"{mean / base:.2f}x" if base else ("inf" if mean else "-")
            mean_of = lambda k, rs=rs: statistics.mean(r[k] or 0.0 for r in rs)  # noqa: E731
            lines.append(
                f"| {data} | {config} | {len(every)} | {diverged} | {mean:.3f} | "
                f"{min(maps):.3f}–"
                f"{max(maps):.3f} | {ratio} | {mean_of('mAP'):.3f} | "
                f"{mean_of('mAR100'):.3f} | {mean_of('train_seconds'):.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="kangaroo,demo", help="kangaroo and/or demo")
    ap.add_argument(
        "--configs", default="efficientnet_lite0:none:scratch,efficientnet_lite0:imagenet:combi"
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4, help="the budget: epochs per run")
    ap.add_argument("--max-minutes", type=float, default=30.0, help="a safety cap per run")
    ap.add_argument("--head-epochs", type=int, default=1, help="combi: head-only epochs")
    ap.add_argument(
        "--patience", type=int, default=None, help="early stopping (default: none within --epochs)"
    )
    ap.add_argument("--lr-cycles", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--n-images", type=int, default=300, help="demo images generated")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--kangaroo", type=Path, default=REPO.parent / "shared/data/kangaroo")
    ap.add_argument("--out", type=Path, default=Path("train-quality.json"))
    ap.add_argument("--summary-only", action="store_true", help="print the table of --out")
    args = ap.parse_args()
    configs = [c.strip() for c in args.configs.split(",")]
    datasets = [d.strip() for d in args.data.split(",")]
    done = json.loads(args.out.read_text())["runs"] if args.out.is_file() else []
    if not args.summary_only:
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
        scratch = Path(tempfile.mkdtemp(prefix="wb-quality-"))
        if "kangaroo" in datasets and not args.kangaroo.is_dir():
            print(f"skipping kangaroo: {args.kangaroo} not found")
            datasets.remove("kangaroo")
        for d in datasets:
            _data_source(d, args, scratch)  # demo data made once, before the workers start
        have = {(r["data"], r["config"], r["seed"]) for r in done}
        todo = [
            (d, c, s)
            for s in range(args.seeds)
            for d in datasets
            for c in configs
            if (d, c, s) not in have
        ]
        print(
            f"{len(todo)} runs to do ({len(have)} already in {args.out}), {args.jobs} at a time, "
            f"{args.epochs} epochs each",
            flush=True,
        )
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = {
                pool.submit(
                    run_one, d, c, s, vars(args) | {"kangaroo": args.kangaroo}, str(scratch)
                ): (d, c, s)
                for d, c, s in todo
            }
            for n, fut in enumerate(as_completed(futures), 1):
                r = fut.result()
                done.append(r)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(
                    json.dumps(
                        {"args": {k: str(v) for k, v in vars(args).items()}, "runs": done}, indent=1
                    )
                )
                got = (
                    f"diverged at epoch {r['epochs']}"
                    if r.get("diverged")
                    else f"mAP@0.5 {r['mAP50']:.3f} ({r['epochs']} epochs)"
                )
                print(
                    f"[{n}/{len(todo)}] {r['data']} {r['config']} seed {r['seed']}: {got} in "
                    f"{r['wall_s']:.0f} s",
                    flush=True,
                )
    print()
    print(summarise(done, configs, datasets))


if __name__ == "__main__":
    main()
