"""`wb serve` latency: /predict over real HTTP on 127.0.0.1 against the bare model.

The same promoted model (untrained weights: latency does not depend on what they
learned) answers batches of 1, 8 and 32 tasks (a) through the service and (b) called
directly as ``open_image`` + ``Predictor.predict`` on the same files, interleaved in
the same run. Per-task latency = request time / batch size; throughput = tasks per
second. The claim: the service's overhead stays within 10% of the bare model at batch 8.

    .venv/bin/python benchmarks/serve_latency.py --quick     # ~1 min on 2 cores
    .venv/bin/python benchmarks/serve_latency.py             # more repeats
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def make_images(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = rng.integers(60, 160, size=(size[1], size[0], 3), dtype=np.uint8)
        x, y = int(rng.integers(0, size[0] // 2)), int(rng.integers(0, size[1] // 2))
        arr[y : y + size[1] // 3, x : x + size[0] // 3] = (220, 40, 40)
        p = folder / f"img{i:03d}.jpg"
        Image.fromarray(arr).save(p, quality=90)
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--backbone", default="mobilenet_v3")
    ap.add_argument("--image-size", type=int, default=320, help="model input (longer side)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (shared machine)")
    ap.add_argument("--batches", default="1,8,32")
    args = ap.parse_args(argv)

    import httpx
    import torch

    from workbench.backend import BackendSettings, ModelHolder, create_app, running
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.detection.predict import Predictor
    from workbench.images import open_image
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    repeats = {1: 10, 8: 4, 32: 2} if args.quick else {1: 30, 8: 10, 32: 4}
    classes = ["ivory", "scale", "claw"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ws = Workspace.create(tmp / "ws", Taxonomy.flat(classes))
        paths = make_images(tmp / "files" / "imgs", max(batches), (400, 300))
        with ws.open_catalog() as catalog:
            version = register_untrained_model(
                ws,
                catalog,
                classes,
                image_size=args.image_size,
                backbone=args.backbone,
                promote=True,
            )
        direct = Predictor(ws.models_dir / version)
        holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=2.0)
        holder.current()
        app = create_app(
            holder,
            ws.open_catalog,
            BackendSettings(taxonomy=ws.taxonomy, document_root=tmp / "files"),
        )
        print(
            f"model {version}: {args.backbone} at {args.image_size} px, untrained, "
            f"{args.threads} torch thread(s); images 400x300 JPEG; "
            f"predictor batch {direct.batch_size}"
        )
        rows = []
        with running(app) as url, httpx.Client(base_url=url, timeout=300) as http:
            for b in batches:
                chosen = paths[:b]
                body = {
                    "tasks": [
                        {"id": i, "data": {"image": f"/data/local-files/?d=imgs/{p.name}"}}
                        for i, p in enumerate(chosen)
                    ]
                }
                # warm both paths once
                direct.predict([open_image(p) for p in chosen])
                assert http.post("/predict", json=body).status_code == 200
                t_direct, t_model, t_service = [], [], []
                for _ in range(repeats.get(b, 3)):
                    t0 = time.perf_counter()
                    images = [open_image(p) for p in chosen]
                    t1 = time.perf_counter()
                    direct.predict(images)
                    t2 = time.perf_counter()
                    res = http.post("/predict", json=body)
                    t3 = time.perf_counter()
                    if res.status_code != 200 or len(res.json()["results"]) != b:
                        raise SystemExit(f"service failed: {res.status_code} {res.text[:300]}")
                    t_direct.append(t2 - t0)
                    t_model.append(t2 - t1)
                    t_service.append(t3 - t2)
                rows.append((b, t_direct, t_model, t_service))

    print(f"\n{'batch':>5} {'path':<22} {'p50 ms/task':>12} {'p95 ms/task':>12} {'tasks/s':>8}")
    for b, t_direct, t_model, t_service in rows:
        for name, ts in (
            ("service (HTTP)", t_service),
            ("direct open+predict", t_direct),
            ("direct predict only", t_model),
        ):
            per_task = [t / b * 1000 for t in ts]
            print(
                f"{b:>5} {name:<22} {statistics.median(per_task):>12.1f} "
                f"{percentile(per_task, 95):>12.1f} {b * len(ts) / sum(ts):>8.2f}"
            )
    print("\noverhead = service p50 / direct (open+predict) p50:")
    verdict = 0
    for b, t_direct, _, t_service in rows:
        ratio = statistics.median(t_service) / statistics.median(t_direct)
        flag = ""
        if b == 8:
            flag = "  (target <= 1.10: " + ("met" if ratio <= 1.10 else "NOT met") + ")"
            verdict = 0 if ratio <= 1.10 else 1
        print(f"  batch {b:>2}: {ratio:.3f}{flag}")
    return verdict


if __name__ == "__main__":
    raise SystemExit(main())
