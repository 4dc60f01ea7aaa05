"""The Ray engine from 1 to 2 worker processes, next to the local engine.

Starts a 2-node Ray cluster on 127.0.0.1 (head + worker node, one CPU each, stopped by
PID: tests/ray_cluster.py), then times on the same generated JPEG photos:

- hashing (``dedup.hashing.iter_hashes``): local with 1 and 2 processes; Ray with 1
  and 2 tasks at a time (``--workers``);
- prediction (``detection.predict._predict_chunk`` through ``map_with_model``) with an
  untrained mobilenet_v3 detector: local, Ray with 1 and 2 actors;

and checks every run gives the same hashes and detections as the local one. Results
to benchmarks/results/ray_engine.json. On a shared machine the figures move with the
load: note it next to them.

    .venv/bin/python benchmarks/ray_engine.py --images 400 --predict-images 40
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ray_cluster import RayCluster  # noqa: E402

from workbench.dedup.hashing import iter_hashes  # noqa: E402
from workbench.engine import EngineSpec, LocalEngine, open_engine  # noqa: E402


def make_photos(folder: Path, n: int, size=(1024, 768)) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        small = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
        p = folder / f"p{i:05d}.jpg"
        small.resize(size, Image.BICUBIC).save(p, quality=90)
        paths.append(str(p))
    return paths


def time_hashing(paths, engine, workers) -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = {
        p: h for chunk in iter_hashes(paths, workers=workers, engine=engine) for p, h, _ in chunk
    }
    return time.perf_counter() - t0, out


def time_predict(model_dir: Path, chunks, engine, workers) -> tuple[float, dict]:
    from functools import partial

    from workbench.detection.predict import Predictor, _predict_chunk

    t0 = time.perf_counter()
    out = {}
    factory = partial(Predictor, str(model_dir), batch_size=4)
    for ids, dets, _ in engine.map_with_model(factory, _predict_chunk, chunks, workers=workers):
        out.update(zip(ids, dets))
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--predict-images", type=int, default=40)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ray_engine.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from workbench.detection.train import TrainConfig, build_model

    torch.set_num_threads(1)
    results: dict = {"images": args.images, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="wbbench") as tmp:
        tmp = Path(tmp)
        paths = make_photos(tmp / "photos", args.images)
        model_dir = tmp / "model"
        model_dir.mkdir()
        config = TrainConfig(backbone="mobilenet_v3", image_size=64, weights="none")
        classes = ["a", "b"]
        torch.manual_seed(0)
        torch.save(build_model(config, classes).state_dict(), model_dir / "weights.pt")
        (model_dir / "config.json").write_text(
            json.dumps({"version": "bench", "classes": classes, "train": config.to_dict()})
        )
        pred_paths = paths[: args.predict_images]
        chunks = [
            [(i + k, p) for k, p in enumerate(pred_paths[i : i + 4])]
            for i in range(0, len(pred_paths), 4)
        ]
        hashing, predict = {}, {}
        local = LocalEngine()
        hashing["local_1"], ref_hashes = time_hashing(paths, local, 1)
        hashing["local_2"], got = time_hashing(paths, local, 2)
        assert got == ref_hashes, "local hashing with 2 processes differs"
        predict["local"], ref_dets = time_predict(model_dir, chunks, local, None)
        t0 = time.perf_counter()
        with RayCluster(workers=1, cpus=1) as cluster:
            results["cluster_start_s"] = round(time.perf_counter() - t0, 1)
            with open_engine(EngineSpec("ray", cluster.address)) as engine:
                time_hashing(paths[:8], engine, 2)  # warm: workers started, package shipped
                for w in (1, 2):
                    hashing[f"ray_{w}"], got = time_hashing(paths, engine, w)
                    assert got == ref_hashes, f"ray hashing with {w} differs from local"
                for w in (1, 2):
                    predict[f"ray_{w}"], got = time_predict(model_dir, chunks, engine, w)
                    assert got == ref_dets, f"ray prediction with {w} actors differs"
    results["hashing_s"] = {k: round(v, 2) for k, v in hashing.items()}
    results["hashing_images_per_s"] = {k: round(args.images / v, 1) for k, v in hashing.items()}
    results["predict_images"] = args.predict_images
    results["predict_s"] = {k: round(v, 2) for k, v in predict.items()}
    results["speedup_1_to_2"] = {
        "local_hashing": round(hashing["local_1"] / hashing["local_2"], 2),
        "ray_hashing": round(hashing["ray_1"] / hashing["ray_2"], 2),
        "ray_predict": round(predict["ray_1"] / predict["ray_2"], 2),
    }
    results["identical_to_local"] = True
    results["load_after"] = os.getloadavg()
    results["cpus"] = len(os.sched_getaffinity(0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
