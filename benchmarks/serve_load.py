"""`wb serve` under concurrent Label Studio-like clients: latency, throughput and the
server's peak memory, 1 client against N (default 8).

One real `wb serve` child process (real HTTP on 127.0.0.1, the promoted model of a
scratch workspace: untrained weights, since latency does not depend on what they
learned) answers clients that each do what Label Studio 1.23 does for a predict batch:
``GET /health``, ``POST /setup``, then ``POST /predict`` with B tasks whose images are
local files (``/data/local-files/?d=...``). Each client repeats that R times.

Measured per scenario: p50 / p95 of the /predict request time (what one annotator's
"retrieve predictions" waits), tasks per second over the whole scenario, 503 answers
(the admission gate: ``backend/admission.py`` lets 2 requests run, 32 wait, and answers
503 beyond that), and the server process's peak RSS: ``VmHWM`` of /proc/PID/status, reset
before each scenario (``clear_refs``), and the highest of RSS polled every 50 ms.

    .venv/bin/python benchmarks/serve_load.py --quick           # ~2-3 min on 2 cores
    .venv/bin/python benchmarks/serve_load.py --clients 1,8,48  # 48: past the queue
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.serve_latency import make_images, percentile  # noqa: E402


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS
        return True
    except OSError:
        return False


class RssPoller:
    def __init__(self, pid: int, every: float = 0.05):
        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid)["VmRSS"])
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def client_loop(url: str, body: dict, repeats: int, out: list, start: threading.Barrier):
    import httpx

    setup = {"project": "1.1", "schema": "", "hostname": "http://127.0.0.1:1"}
    with httpx.Client(base_url=url, timeout=300) as http:
        start.wait()
        for _ in range(repeats):
            http.get("/health")
            http.post("/setup", json=setup)
            t0 = time.perf_counter()
            res = http.post("/predict", json=body)
            elapsed = time.perf_counter() - t0
            ok = res.status_code == 200 and len(res.json()["results"]) == len(body["tasks"])
            if ok and any("error" in r for r in res.json()["results"]):
                ok = False
            out.append((elapsed, res.status_code, ok))


def scenario(url: str, pid: int, clients: int, body: dict, repeats: int) -> dict:
    results: list[tuple[float, int, bool]] = []
    barrier = threading.Barrier(clients + 1)
    threads = [
        threading.Thread(target=client_loop, args=(url, body, repeats, results, barrier))
        for _ in range(clients)
    ]
    reset = reset_peak(pid)
    with RssPoller(pid) as poller:
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    mem = rss_kib(pid)
    answered = [r for r in results if r[1] == 200]
    times = [r[0] for r in answered] or [float("nan")]
    return {
        "clients": clients,
        "requests": len(results),
        "ok": sum(1 for r in results if r[2]),
        "busy_503": sum(1 for r in results if r[1] == 503),
        "other": sum(1 for r in results if r[1] not in (200, 503)),
        "p50_s": statistics.median(times),
        "p95_s": percentile(times, 95),
        "tasks_per_s": len(answered) * len(body["tasks"]) / wall,
        "wall_s": wall,
        "peak_rss_mib": (mem["VmHWM"] if reset else poller.peak) / 1024,
        "polled_peak_rss_mib": poller.peak / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests per client")
    ap.add_argument("--clients", default="1,8", help="scenarios; the first is the baseline")
    ap.add_argument("--batch", type=int, default=8, help="tasks per /predict")
    ap.add_argument("--repeats", type=int, default=None, help="requests per client")
    ap.add_argument("--backbone", default="mobilenet_v3")
    ap.add_argument("--image-size", type=int, default=320, help="model input (longer side)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)

    import httpx

    from workbench.backend.tiny_models import register_untrained_model
    from workbench.services import free_port, spawn
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    counts = [int(c) for c in args.clients.split(",")]
    classes = ["ivory", "scale", "claw"]
    with tempfile.TemporaryDirectory(prefix="wb-serve-load-") as tmp:
        tmp = Path(tmp)
        ws = Workspace.create(tmp / "ws", Taxonomy.flat(classes))
        paths = make_images(tmp / "files" / "imgs", max(args.batch, 8), (400, 300))
        with ws.open_catalog() as catalog:
            version = register_untrained_model(
                ws,
                catalog,
                classes,
                image_size=args.image_size,
                backbone=args.backbone,
                promote=True,
            )
        port = free_port()
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(args.threads),
            "WB_LS_URL": "http://127.0.0.1:1",
            "WB_LS_TOKEN": "unused",
            "WB_LS_DOCUMENT_ROOT": str(tmp / "files"),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        argv_ = [sys.executable, "-m", "workbench", "-w", str(ws.root), "serve"]
        argv_ += ["--port", str(port), "--poll-seconds", "60"]
        proc = spawn("wb serve", argv_, tmp / "serve.log", env=env)
        url = f"http://127.0.0.1:{port}"
        body = {
            "tasks": [
                {
                    "id": i,
                    "data": {"image": f"/data/local-files/?d=imgs/{paths[i % len(paths)].name}"},
                }
                for i in range(args.batch)
            ]
        }
        rows = []
        try:

            def healthy() -> bool:
                try:
                    return httpx.get(f"{url}/health", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            proc.wait_healthy(healthy, timeout=180, interval=0.5)
            assert httpx.post(f"{url}/predict", json=body, timeout=300).status_code == 200  # warm
            idle = rss_kib(proc.pid)["VmRSS"] / 1024
            print(
                f"model {version}: {args.backbone} at {args.image_size} px, untrained, server "
                f"with {args.threads} torch thread(s); {args.batch} tasks per /predict "
                f"(400x300 JPEG local files); server RSS after warm-up {idle:.0f} MiB"
            )
            for n in counts:
                repeats = args.repeats or max(2, (8 if args.quick else 16) // n) + (n > 1)
                rows.append(scenario(url, proc.pid, n, body, repeats))
                r = rows[-1]
                print(
                    f"  {n} client(s): {r['requests']} requests in {r['wall_s']:.1f} s", flush=True
                )
        finally:
            proc.stop()
            log = (tmp / "serve.log").read_text()
        if "Traceback" in log:
            print(log[-3000:])
            return 1

    head = (
        f"{'clients':>7} {'requests':>8} {'ok':>4} {'503':>4} {'p50 s':>7} {'p95 s':>7} "
        f"{'tasks/s':>8} {'peak RSS MiB':>12}"
    )
    print("\n" + head)
    for r in rows:
        print(
            f"{r['clients']:>7} {r['requests']:>8} {r['ok']:>4} {r['busy_503']:>4} "
            f"{r['p50_s']:>7.2f} {r['p95_s']:>7.2f} {r['tasks_per_s']:>8.2f} "
            f"{r['peak_rss_mib']:>12.0f}"
        )
    base = rows[0]
    print(f"\nratio against {base['clients']} client(s):")
    for r in rows[1:]:
        print(
            f"  {r['clients']} clients: p50 x{r['p50_s'] / base['p50_s']:.2f}, "
            f"p95 x{r['p95_s'] / base['p95_s']:.2f}, throughput "
            f"x{r['tasks_per_s'] / base['tasks_per_s']:.2f}, peak RSS "
            f"x{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}"
        )
    if args.json:
        meta = {"backbone": args.backbone, "image_size": args.image_size, "batch": args.batch}
        args.json.write_text(json.dumps({"setup": meta, "rows": rows}, indent=1))
    failed = sum(r["other"] for r in rows) + sum(
        r["requests"] - r["ok"] - r["busy_503"] for r in rows
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
