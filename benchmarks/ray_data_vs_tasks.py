"""Why the Ray engine uses plain tasks, not Ray Data: the same hashing of 200 generated
JPEGs on the same 2-node cluster, through ``engine.map_tasks`` and through
``ray.data.from_items(...).map_batches``, both warmed up first; the hashes must agree.

Ray Data needs pyarrow, which workbench does not otherwise install:

    pip install --target /tmp/pa pyarrow
    PYTHONPATH=/tmp/pa .venv/bin/python benchmarks/ray_data_vs_tasks.py
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]
from ray_cluster import RayCluster  # noqa: E402
from ray_engine import make_photos  # noqa: E402

from workbench.dedup.hashing import hash_chunk, iter_hashes  # noqa: E402
from workbench.engine import EngineSpec, open_engine  # noqa: E402


def data_hash(batch):
    out = hash_chunk(("phash", list(batch["path"])))
    return {
        "path": [p for p, _, _ in out],
        "hash": [h.hash if h else "" for _, h, _ in out],
        "centre": [h.centre_hash if h else "" for _, h, _ in out],
    }


with tempfile.TemporaryDirectory(prefix="wbdata") as tmp:
    paths = make_photos(Path(tmp) / "p", 200)
    with RayCluster(workers=1, cpus=1) as c:
        with open_engine(EngineSpec("ray", c.address)) as engine:
            import ray

            list(iter_hashes(paths[:8], engine=engine, workers=2))
            t0 = time.perf_counter()
            tasks = {p: h for ch in iter_hashes(paths, engine=engine, workers=2) for p, h, _ in ch}
            t_tasks = time.perf_counter() - t0
            ds = ray.data.from_items([{"path": p} for p in paths[:8]])
            ds.map_batches(data_hash, batch_size=4).take_all()
            t0 = time.perf_counter()
            rows = (
                ray.data.from_items([{"path": p} for p in paths])
                .map_batches(data_hash, batch_size=12)
                .take_all()
            )
            t_data = time.perf_counter() - t0
            same = all(
                tasks[r["path"]].hash == r["hash"] and tasks[r["path"]].centre_hash == r["centre"]
                for r in rows
            ) and len(rows) == len(paths)
    print(
        json.dumps(
            {
                "images": 200,
                "tasks_s": round(t_tasks, 1),
                "ray_data_s": round(t_data, 1),
                "same": same,
                "load": os.getloadavg(),
            }
        )
    )
