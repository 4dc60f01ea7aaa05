"""`wb push` / `wb pull` against a real Label Studio: this checkout against a baseline one.

One Label Studio server (``WB_LS_BIN``, bound to 127.0.0.1, data in a temporary folder)
serves every run. Each code version gets its own workspace, made by that version's own
CLI (`wb init`, `wb ingest` of ``--images`` generated JPEGs) plus two model versions'
predictions written into its catalog (v001 promoted: push pre-draws its boxes; v002
promoted later, as `wb retrain` would). A round copies that workspace and times, each
step a ``python -m workbench`` child process run with ``PYTHONPATH`` = the checkout's
root, so any checkout is measured whatever its internal APIs:

1. ``push``: a new project, one task per image with v001's boxes;
2. ``annotate`` (control: Label Studio's own time, no workbench code runs): half the
   tasks annotated through the SDK, copying the pre-drawn boxes (every 4th a negative);
3. ``pull``: the annotations back into the catalog;
4. ``push again``: v002 promoted and a tenth of the tasks forgotten by the catalog (as
   after an interrupted push) first, so this is the refresh (v002's boxes onto every
   earlier task) and reconcile (a full task listing) path;
5. ``prioritize``: `wb prioritize` ranks the unannotated images from v002's stored
   predictions (no model runs) and writes the scores into Label Studio.

With ``--baseline DIR`` (another checkout's root) the two versions run interleaved
(baseline, current, baseline, ...) for ``--repeats`` rounds each, after one untimed
warm-up round each; the table gives per step the median wall time of each and the
ratio current / baseline (below 1: the current checkout is faster), and the spread of
each version's own rounds (max / min - 1, the larger of the two); ``total`` is a round's
workbench steps summed. The ``annotate`` row is a control: the same Label Studio work on
both sides, so its ratio is noise. A ratio closer to 1 than the spread is noise too.
``--out`` writes every round's times and the counts each step reported.

    git -C /work/main worktree add ../base 53c19fe          # a baseline checkout, once
    WB_LS_BIN=.venv-ls/bin/label-studio .venv/bin/python benchmarks/labelstudio_sync.py \\
        --quick --baseline ../base                          # ~2 min on 2 quiet cores
    WB_LS_BIN=.venv-ls/bin/label-studio .venv/bin/python benchmarks/labelstudio_sync.py \\
        --baseline ../base --images 200 --repeats 5 --out ls-sync.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parent.parent
STEPS = ("push", "annotate", "pull", "push again", "prioritize")
CONTROL_STEPS = ("annotate",)  # no workbench code runs in these
CLI_STEPS = tuple(s for s in STEPS if s not in CONTROL_STEPS)  # a `wb` child process each
LABELS = ("elephant_ivory", "pangolin_raw_scale", "tiger_claw", "non_wildlife")
MODEL_CLASSES = ("elephant", "pangolin", "tiger", "non_wildlife")  # species level
MODEL_VERSIONS = ("v001", "v002")


@dataclass(frozen=True)
class CodeVersion:
    name: str  # "baseline" or "current"
    root: Path  # the checkout whose `workbench` package the child processes import


# ---- pure helpers (tests/unit/test_benchmark_helpers.py) ----------------------------------
def interleaved(versions: list[str], repeats: int) -> list[tuple[str, int]]:
    """(version, repeat) in run order: every version once per repeat, in the given order
    (baseline, current, baseline, current, ...), so slow drift hits both alike."""
    return [(v, r) for r in range(repeats) for v in versions]


def step_rows(
    rounds: list[dict],
    steps: tuple[str, ...] = STEPS,
    baseline: str = "baseline",
    current: str = "current",
) -> list[dict]:
    """One row per step, then a ``total`` row (the sum of a round's steps, the control
    steps left out): the median seconds of each version's rounds, ``ratio`` = current /
    baseline (None without baseline rounds), and ``spread``: the larger of the two
    versions' max / min - 1 over their own rounds (None with fewer than 2 rounds each), a
    ratio closer to 1 than that is noise. Rounds are ``{"version", "seconds": {step: s}}``."""

    def times(version: str, step: str) -> list[float]:
        return [r["seconds"][step] for r in rounds if r["version"] == version]

    def totals(version: str) -> list[float]:
        timed = [s for s in steps if s not in CONTROL_STEPS]
        return [sum(r["seconds"][s] for s in timed) for r in rounds if r["version"] == version]

    rows = []
    for step, base, cur in [(s, times(baseline, s), times(current, s)) for s in steps] + [
        ("total", totals(baseline), totals(current))
    ]:
        b = statistics.median(base) if base else None
        c = statistics.median(cur) if cur else None
        spreads = [max(ts) / min(ts) - 1 for ts in (base, cur) if len(ts) >= 2 and min(ts) > 0]
        rows.append(
            {
                "step": step,
                "baseline_s": b,
                "current_s": c,
                "ratio": c / b if b and c is not None else None,
                "spread": max(spreads) if spreads else None,
                "control": step in CONTROL_STEPS,
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    """The printed table: seconds with 2 decimals, ratio with 3, spread in percent, '-'
    for no value."""

    def num(v: float | None, digits: int) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    header = (
        f"{'step':<22} {'baseline s':>11} {'current s':>10} {'current/baseline':>17} {'spread':>7}"
    )
    lines = [header]
    for r in rows:
        name = r["step"] + (" (control)" if r.get("control") else "")
        lines.append(
            f"{name:<22} {num(r['baseline_s'], 2):>11} {num(r['current_s'], 2):>10} "
            f"{num(r['ratio'], 3):>17} "
            f"{'-' if r.get('spread') is None else format(r['spread'], '.0%'):>7}"
        )
    return "\n".join(lines)


def work_differences(rounds: list[dict]) -> list[str]:
    """Steps whose reported counts differ between rounds (e.g. the baseline pulled 12
    images and the current checkout 11): then the two did not do the same work."""
    seen: dict[str, tuple[str, dict]] = {}
    out = []
    for r in rounds:
        for step, work in r["work"].items():
            if step not in seen:
                seen[step] = (r["version"], work)
            elif work != seen[step][1]:
                out.append(
                    f"{step}: {seen[step][0]} reported {seen[step][1]}, "
                    f"{r['version']} (repeat {r['repeat']}) {work}"
                )
    return out


def last_json(text: str):
    """The JSON document a `--json` command printed last (rich may print around it)."""
    starts = [m.start() for m in re.finditer(r"^[\[{]", text, re.MULTILINE)]
    for start in starts:
        try:
            return json.loads(text[start:])
        except ValueError:
            continue
    raise ValueError(f"no JSON in the output: {text[-500:]!r}")


# ---- child processes ----------------------------------------------------------------------
class Cli:
    """``python -m workbench`` with one checkout's code, against the benchmark's server."""

    def __init__(self, version: CodeVersion, env: dict[str, str]):
        self.version = version
        self.env = {**env, "PYTHONPATH": str(version.root)}
        self.last_rss_mb = 0.0

    def __call__(self, ws: Path, *args: str, timeout: float = 900) -> tuple[float, str]:
        """Run one command; returns (wall seconds, stdout). Its peak resident memory
        (``ru_maxrss`` of that child alone, from ``wait4``) is left in ``last_rss_mb``."""
        cmd = [sys.executable, "-m", "workbench", "-w", str(ws), *args]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd, env=self.env, cwd=self.version.root, stdout=out, stderr=err, text=True
            )
            deadline = t0 + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.05)
            seconds = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.last_rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if proc.returncode != 0:
            raise SystemExit(
                f"{self.version.name}: `wb {' '.join(args)}` exited "
                f"{proc.returncode}:\n{stdout[-1500:]}\n{stderr[-3000:]}"
            )
        return seconds, stdout


def base_env(ls_bin: str, token: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WB_LS_", "LABEL_STUDIO_", "DJANGO_", "PYTHONPATH"))
    }
    env.update(
        {"WB_LS_BIN": ls_bin, "WB_LS_TOKEN": token, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    )
    return env


# ---- the Label Studio server ------------------------------------------------------------
class LabelStudio:
    """One server for the whole run, started through this checkout's `wb ls start` and
    stopped by its PID (its own process group) at the end, also on Ctrl-C."""

    def __init__(self, cli: Cli, root: Path, files: Path, timeout: float):
        self.cli, self.root, self.files, self.timeout = cli, root, files, timeout
        self.pid: int | None = None
        self.url = ""

    def __enter__(self) -> Self:
        ws = self.root / "server-ws"
        self.cli(ws, "init")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            _, out = self.cli(
                ws,
                "ls",
                "start",
                "--port",
                str(port),
                "--document-root",
                str(self.files),
                "--timeout",
                str(self.timeout),
                timeout=self.timeout + 60,
            )
        except BaseException:  # interrupted: the server may run already, its PID recorded
            self.pid = self._pid(ws, "")
            self.__exit__()
            raise
        self.pid = self._pid(ws, out)
        self.url = f"http://127.0.0.1:{port}"
        return self

    @staticmethod
    def _pid(ws: Path, output: str) -> int | None:
        m = re.search(r"\(pid (\d+)\)", output)
        if m:
            return int(m.group(1))
        state = ws / "services" / "labelstudio.json"
        try:
            return int(json.loads(state.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def __exit__(self, *exc) -> None:
        if self.pid is None or not _is_label_studio(self.pid):
            return
        print(f"stopping Label Studio (pid {self.pid})", flush=True)
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _is_label_studio(self.pid):
            time.sleep(0.2)
        if _is_label_studio(self.pid):
            _signal_group(self.pid, signal.SIGKILL)


def _is_label_studio(pid: int) -> bool:
    """Alive, not a zombie, and still label-studio (not a recycled PID)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"label-studio" in cmdline


def _signal_group(pid: int, sig: int) -> None:
    try:  # `wb ls start` runs it in its own session: the group reaches its workers too
        os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
    except ProcessLookupError:
        pass


# ---- the data ---------------------------------------------------------------------------
def make_images(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (320, 240)) -> None:
    """``n`` small JPEGs (``size`` = width, height) in folder/<label>/, a bright rectangle
    on a noisy background. Push and pull send URLs, never pixels: for tens of thousands
    of tasks, small images measure the same work."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(n):
        p = folder / LABELS[i % len(LABELS)] / f"img{i:05d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(40, 170, size=(h, w, 3), dtype=np.uint8)
        x, y = int(rng.integers(0, w * 5 // 8)), int(rng.integers(0, h * 7 // 12))
        arr[y : y + h // 3, x : x + w * 5 // 16] = (230, 220, 190)
        Image.fromarray(arr).save(p, quality=85)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def add_model_predictions(catalog: Path, seed: int = 0) -> int:
    """Register v001 (promoted) and v002 in the catalog with 1-3 boxes per active image,
    as `wb retrain` leaves them (written with SQL: the schema is what every checkout
    shares, its Python API may differ). Returns the number of images."""
    rng = random.Random(seed)
    db = sqlite3.connect(catalog)
    try:
        with db:
            images = db.execute(
                "SELECT id, width, height FROM images WHERE status = 'active' ORDER BY id"
            ).fetchall()
            for k, version in enumerate(MODEL_VERSIONS):
                ts = _now()
                db.execute(
                    "INSERT INTO models (version, created_at, promoted, promoted_at, "
                    "level, classes_json) VALUES (?, ?, ?, ?, 'species', ?)",
                    (version, ts, int(k == 0), ts if k == 0 else None, json.dumps(MODEL_CLASSES)),
                )
                rows = []
                for image_id, w, h in images:
                    boxes = []
                    for _ in range(rng.randint(1, 3)):
                        x1, y1 = rng.uniform(0, w * 0.6), rng.uniform(0, h * 0.6)
                        weights = [rng.random() + 0.05 for _ in MODEL_CLASSES]
                        probs = {c: wt / sum(weights) for c, wt in zip(MODEL_CLASSES, weights)}
                        label = max(probs, key=probs.get)
                        boxes.append(
                            {
                                "label": label,
                                "x1": round(x1, 2),
                                "y1": round(y1, 2),
                                "x2": round(x1 + rng.uniform(10, w * 0.4), 2),
                                "y2": round(y1 + rng.uniform(10, h * 0.4), 2),
                                "score": probs[label],
                                "probs": probs,
                            }
                        )
                    rows.append((image_id, version, json.dumps(boxes), ts))
                db.executemany(
                    "INSERT INTO predictions (image_id, model_version, boxes_json, "
                    "created_at) VALUES (?, ?, ?, ?)",
                    rows,
                )
    finally:
        db.close()
    return len(images)


def promote_v002_and_forget_tasks(catalog: Path, project_id: int, forget: int) -> None:
    """What happens between two pushes: `wb retrain` promotes v002, and an interrupted
    push left ``forget`` tasks in Label Studio that the catalog never recorded."""
    db = sqlite3.connect(catalog)
    try:
        with db:
            db.execute(
                "UPDATE models SET promoted = (version = 'v002'), promoted_at = "
                "CASE WHEN version = 'v002' THEN ? ELSE promoted_at END",
                (_now(),),
            )
            db.execute(
                "DELETE FROM ls_tasks WHERE rowid IN (SELECT t.rowid FROM ls_tasks t "
                "JOIN images i ON i.id = t.image_id WHERE t.project_id = ? AND "
                "i.annotated = 0 ORDER BY t.image_id LIMIT ?)",
                (project_id, forget),
            )
    finally:
        db.close()


def prepare_workspace(cli: Cli, ws: Path, images: Path) -> int:
    """The version's template workspace: init and ingest by its own CLI, then models."""
    cli(ws, "init")
    cli(ws, "ingest", str(images), "--format", "folders", "--json")
    return add_model_predictions(ws / "catalog.sqlite")


# ---- one round ---------------------------------------------------------------------------
def annotate(sdk, project_id: int, n: int | None = None) -> tuple[float, int]:
    """Annotate every other task (by id; ``n`` of them when given, spread over the
    project) through the SDK, accepting the pre-drawn boxes; every 4th annotated task
    is a negative. Returns (seconds, annotations)."""
    tasks = sorted(sdk.tasks.list(project=project_id, fields="all"), key=lambda t: t.id)
    chosen = tasks[::2] if n is None else tasks[:: max(1, len(tasks) // max(n, 1))][:n]
    results = []
    for n, task in enumerate(chosen):
        pred = task.predictions[0] if task.predictions else {"result": []}
        pred = pred if isinstance(pred, dict) else pred.dict()
        results.append(
            []
            if n % 4 == 3
            else [{k: v for k, v in r.items() if k not in ("score", "id")} for r in pred["result"]]
        )
    t0 = time.perf_counter()
    for task, result in zip(chosen, results):
        sdk.annotations.create(id=task.id, result=result)
    return time.perf_counter() - t0, len(chosen)


def one_round(
    cli: Cli,
    sdk,
    template: Path,
    ws: Path,
    n_images: int,
    steps: tuple[str, ...] = STEPS,
    annotations: int | None = None,
) -> tuple[dict, dict, dict]:
    """Time ``steps`` (in STEPS' order; each needs the push) on a fresh copy of the
    template; returns (seconds, counts, peak resident MB of each step's `wb` process)."""
    shutil.copytree(template, ws)
    seconds, work, memory = {}, {}, {}
    seconds["push"], out = cli(ws, "push", "--json", timeout=3600)
    memory["push"] = cli.last_rss_mb
    pushed = last_json(out)
    work["push"] = {k: pushed.get(k) for k in ("created", "with_predictions")}
    if "annotate" in steps:
        seconds["annotate"], work["annotate"] = annotate(
            sdk, int(pushed["project_id"]), annotations
        )
    if "pull" in steps:
        seconds["pull"], out = cli(ws, "pull", "--json", timeout=3600)
        memory["pull"] = cli.last_rss_mb
        pulled = last_json(out)
        work["pull"] = {k: pulled.get(k) for k in ("updated_images", "negatives", "boxes")}
    if "push again" in steps:
        promote_v002_and_forget_tasks(
            ws / "catalog.sqlite", int(pushed["project_id"]), max(1, n_images // 10)
        )
        seconds["push again"], out = cli(ws, "push", "--json", timeout=3600)
        memory["push again"] = cli.last_rss_mb
        again = last_json(out)
        work["push again"] = {k: again.get(k) for k in ("created", "reconciled", "refreshed")}
    if "prioritize" in steps:
        seconds["prioritize"], out = cli(ws, "prioritize", "--json", timeout=3600)
        memory["prioritize"] = cli.last_rss_mb
        work["prioritize"] = {"batch": len(last_json(out))}
    return seconds, work, memory


def parse_steps(value: str) -> tuple[str, ...]:
    """``--steps push,pull`` -> those of STEPS, in STEPS' order (push always runs)."""
    asked = {s.strip() for s in value.split(",") if s.strip()}
    unknown = asked - set(STEPS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown step(s) {', '.join(sorted(unknown))}; choose from: {', '.join(STEPS)}"
        )
    return tuple(s for s in STEPS if s in asked | {"push"})


def parse_size(value: str) -> tuple[int, int]:
    """``--image-size 96x72`` -> (96, 72)."""
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 96x72, not {value!r}"
        ) from None
    return w, h


def peak_rss_mb(pid: int | None) -> float | None:
    """A running process's peak resident memory so far (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, TypeError, ValueError):
        return None
    return None


# ---- main ----------------------------------------------------------------------------------
def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="another checkout's root, run side by side with this one",
    )
    p.add_argument(
        "--images", type=int, default=None, help="images per workspace (default 200; --quick 24)"
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed rounds per version (default 5; --quick 2)"
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds per version first")
    p.add_argument("--quick", action="store_true", help="fewer images and rounds (~2 min)")
    p.add_argument(
        "--ls-bin",
        default=os.environ.get("WB_LS_BIN"),
        help="the label-studio program (default: $WB_LS_BIN)",
    )
    p.add_argument(
        "--ls-timeout",
        type=float,
        default=420.0,
        help="seconds to wait for Label Studio's first start (migrations)",
    )
    p.add_argument(
        "--steps",
        type=parse_steps,
        default=STEPS,
        help=f"comma-separated steps to run (default all: {','.join(STEPS)}); push always runs",
    )
    p.add_argument(
        "--annotate",
        type=int,
        default=None,
        metavar="N",
        help="tasks annotated through the SDK in the annotate step (default: every other one)",
    )
    p.add_argument(
        "--image-size",
        type=parse_size,
        default=(320, 240),
        metavar="WxH",
        help="size of the generated JPEGs (default 320x240)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    n_images = args.images or (24 if args.quick else 200)
    repeats = args.repeats or (2 if args.quick else 5)
    if not args.ls_bin:
        raise SystemExit(
            "set WB_LS_BIN (or --ls-bin) to the label-studio program, e.g. "
            ".venv-ls/bin/label-studio"
        )
    versions = {"current": CodeVersion("current", REPO)}
    if args.baseline is not None:
        root = args.baseline.expanduser().resolve()
        if not (root / "workbench" / "__main__.py").is_file():
            raise SystemExit(
                f"--baseline {root} is not a workbench checkout (no workbench/__main__.py)"
            )
        versions = {"baseline": CodeVersion("baseline", root), **versions}
    order = list(versions)
    # SIGTERM ends the run like Ctrl-C does: through the finally blocks that stop the server
    signal.signal(signal.SIGTERM, _interrupt)

    from label_studio_sdk import LabelStudio as SDK

    token = secrets.token_hex(20)
    env = base_env(args.ls_bin, token)
    clis = {name: Cli(v, env) for name, v in versions.items()}
    started = time.monotonic()
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="wb-ls-sync-") as tmp:
        tmp = Path(tmp)
        files = tmp / "files"
        make_images(files / "images", n_images, size=args.image_size)
        for name, v in versions.items():
            print(f"{name}: {v.root} ({_git_describe(v.root)})", flush=True)
        print(
            f"starting Label Studio ({args.ls_bin}; the first start migrates, ~30-60 s)", flush=True
        )
        with LabelStudio(clis["current"], tmp, files, args.ls_timeout) as server:
            print(
                f"Label Studio at {server.url} (pid {server.pid}) after "
                f"{time.monotonic() - started:.0f} s",
                flush=True,
            )
            for cli in clis.values():
                cli.env.update({"WB_LS_URL": server.url, "WB_LS_DOCUMENT_ROOT": str(files)})
            sdk = SDK(base_url=server.url, api_key=token)
            templates = {}
            for name in order:
                templates[name] = tmp / f"template-{name}"
                prepare_workspace(clis[name], templates[name], files / "images")
            print(
                f"{n_images} images ingested per workspace; {args.warmup} warm-up and "
                f"{repeats} timed rounds per version, order {' '.join(order)} ...",
                flush=True,
            )
            plan = [(v, -1 - r) for r in range(args.warmup) for v in order] + interleaved(
                order, repeats
            )
            for k, (name, repeat) in enumerate(plan, start=1):
                seconds, work, memory = one_round(
                    clis[name],
                    sdk,
                    templates[name],
                    tmp / f"ws-{name}-{k}",
                    n_images,
                    args.steps,
                    args.annotate,
                )
                label = "warm-up" if repeat < 0 else f"repeat {repeat + 1}/{repeats}"
                print(
                    f"[{k}/{len(plan)}] {name:<8} {label:<12} "
                    + "  ".join(
                        f"{s} {seconds[s]:.2f}s" + (f" ({memory[s]:.0f} MB)" if s in memory else "")
                        for s in args.steps
                    ),
                    flush=True,
                )
                if repeat >= 0:
                    rounds.append(
                        {
                            "version": name,
                            "repeat": repeat,
                            "seconds": seconds,
                            "work": work,
                            "peak_rss_mb": memory,
                        }
                    )
            server_peak = peak_rss_mb(server.pid)
    rows = step_rows(rounds, args.steps)
    print(
        f"\n{n_images} images, {repeats} rounds per version, medians of wall time per "
        f"step (child process included); load average {os.getloadavg()[0]:.1f}:\n"
    )
    print(format_table(rows))
    for name in order:
        peaks = {
            step: max(r["peak_rss_mb"][step] for r in rounds if r["version"] == name)
            for step in args.steps
            if step in CLI_STEPS and any(r["version"] == name for r in rounds)
        }
        print(
            f"peak resident memory of the `wb` process, {name}: "
            + ", ".join(f"{step} {mb:.0f} MB" for step, mb in peaks.items())
        )
    if server_peak is not None:
        print(f"Label Studio's own peak resident memory: {server_peak:.0f} MB")
    print(
        "spread: the larger of the two versions' max/min - 1 over its own rounds; a ratio "
        "closer to 1 than that, or than the control's, is noise"
    )
    differences = work_differences(rounds)
    for line in differences:
        print(f"warning: the versions did different work: {line}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "images": n_images,
                    "image_size": list(args.image_size),
                    "steps": list(args.steps),
                    "annotated": args.annotate,
                    "label_studio_peak_rss_mb": server_peak,
                    "repeats": repeats,
                    "warmup": args.warmup,
                    "versions": {
                        n: {"root": str(v.root), "commit": _git_describe(v.root)}
                        for n, v in versions.items()
                    },
                    "load_average": os.getloadavg(),
                    "cpus": os.cpu_count(),
                    "seconds_total": time.monotonic() - started,
                    "table": rows,
                    "rounds": rounds,
                    "work_differences": differences,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {args.out}")
    return 1 if differences else 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _git_describe(root: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "not a git checkout"


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
