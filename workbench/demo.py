"""`wb demo`: the whole loop, unattended, on the built-in data, against the real services.

1. generate the demo data, ingest it (folder-per-class), find duplicates and conflicts;
2. start the local Label Studio and push the tasks;
3. play the annotators through Label Studio's API: annotate a seed batch from the data
   set's known boxes (background images submitted with no boxes, as negatives);
4. pull, retrain within the time budget, evaluate, promote;
5. start `wb serve --connect` so the remaining tasks get predictions through the real
   ML backend protocol, ordered by `wb prioritize`;
6. a second round: the annotators take tasks in the order Label Studio hands them out
   (`/next`, least certain first), correcting the model's pre-drawn boxes; pull,
   retrain from the first model, evaluate both on the same test split;
7. build the FiftyOne review dataset with both model versions evaluated.

Everything it starts it stops, unless ``keep_running``. A second run reuses what is there.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .detection.names import DEFAULT_BACKBONE
from .geometry import iou_xyxy
from .services import ManagedProcess, free_port, port_is_free, spawn

log = logging.getLogger(__name__)
Echo = Callable[[str], None]


@dataclass
class DemoOptions:
    # training budgets are epochs, so a busy machine ends with the same models as a quiet
    # one (only later); max_minutes is a safety cap on each round's training
    epochs: int = 6  # round 1, from ImageNet weights
    epochs_round2: int = 3  # round 2, continuing round 1's model
    max_minutes: float = 20.0
    n_images: int = 300
    seed_batch: int = 150  # round 1: images annotated before the first model
    second_batch: int = 50  # round 2: the least certain, in Label Studio's order
    backbone: str = DEFAULT_BACKBONE  # pretrained offline, fast on a CPU
    image_size: int | None = None  # None: the backbone's default
    ls_port: int | None = None
    backend_port: int | None = None
    keep_running: bool = False
    review: bool = True
    seed: int = 0


@dataclass
class DemoSummary:
    workspace: str
    data: dict = field(default_factory=dict)
    dedup: dict = field(default_factory=dict)
    labelstudio: dict = field(default_factory=dict)
    rounds: list[dict] = field(default_factory=list)
    comparison: dict = field(default_factory=dict)
    prioritize: dict = field(default_factory=dict)
    review: dict = field(default_factory=dict)
    explain: dict = field(default_factory=dict)
    reports: dict = field(default_factory=dict)
    services: dict = field(default_factory=dict)
    seconds: float = 0.0
    keep_running: bool = False

    def to_dict(self) -> dict:
        return dict(vars(self))


# ---- helpers ---------------------------------------------------------------------------


def _free_port(preferred: int | None, fallback_start: int) -> int:
    if preferred:
        return preferred
    return fallback_start if port_is_free(fallback_start) else free_port()


# The demo's annotators are programs: the seconds they report to Label Studio as each
# annotation's lead_time come from this model of a person's work, not from a person.
# Per task, then per box by what was done to it; each task's total varied by up to 20%.
SIMULATED_SECONDS = {"task": 3.0, "new": 7.0, "moved": 3.0, "kept": 1.0, "deleted": 1.0}


def simulated_lead_time(counts: dict[str, int], task_id: int) -> float:
    """The seconds a simulated annotator reports for one task: ``SIMULATED_SECONDS`` per
    task and per box outcome (``counts``: kept, moved, new, deleted), varied by up to
    20% with a generator seeded by the task (the same task takes the same time)."""
    base = SIMULATED_SECONDS["task"] + sum(
        SIMULATED_SECONDS[k] * n for k, n in counts.items() if k in SIMULATED_SECONDS
    )
    return round(base * random.Random(task_id).uniform(0.8, 1.2), 2)


class Annotators:
    """Simulated annotators: they know the demo data's true boxes and submit them through
    Label Studio's API, starting from the model's pre-drawn boxes when a task has them."""

    def __init__(self, ws, catalog, client, project_id: int, truth_file: Path):
        self.ws, self.catalog, self.client, self.pid = ws, catalog, client, project_id
        coco = json.loads(truth_file.read_text())
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        by_image: dict[int, list] = {}
        for a in coco["annotations"]:
            x, y, w, h = a["bbox"]
            by_image.setdefault(a["image_id"], []).append(
                (cats[a["category_id"]], x, y, x + w, y + h)
            )
        root = truth_file.parent
        self.truth = {
            str((root / im["file_name"]).resolve()): by_image.get(im["id"], [])
            for im in coco["images"]
        }
        self.level = ws.model_level()
        # per ground-truth box: started from a pre-drawn box (kept as drawn, or moved) or
        # drawn new; per pre-drawn box the annotator did not use: deleted
        self.stats = {
            "annotated": 0,
            "negatives": 0,
            "boxes": 0,
            "kept": 0,
            "moved": 0,
            "added": 0,
            "deleted": 0,
        }

    def annotate(self, task_id: int, image_id: int) -> bool:
        from .labelstudio.tasks import rect_item

        image = self.catalog.get_image(image_id)
        truth = self.truth.get(image.path)
        if truth is None:
            return False
        gt = [
            (self.ws.taxonomy.to_level(lab, self.level), x1, y1, x2, y2)
            for lab, x1, y1, x2, y2 in truth
        ]
        predicted, prediction_id = self._predicted(task_id, image)
        counts = {"kept": 0, "moved": 0, "new": 0}
        classes = self.ws.taxonomy.classes(self.level)
        used: set[int] = set()
        result = []
        for label, x1, y1, x2, y2 in gt:
            # start from a pre-drawn box of the right class when there is one (as people do)
            best, best_iou = None, 0.3
            for i, (plabel, pbox, _rid) in enumerate(predicted):
                if (
                    i not in used
                    and plabel == label
                    and iou_xyxy(pbox, (x1, y1, x2, y2)) > best_iou
                ):
                    best, best_iou = i, iou_xyxy(pbox, (x1, y1, x2, y2))
            rid = f"gt{len(result)}"
            self.stats["boxes"] += 1
            if best is not None:
                used.add(best)
                rid = predicted[best][2] or rid
                outcome = "kept" if best_iou > 0.95 else "moved"
                self.stats[outcome] += 1
                counts[outcome] += 1
            else:
                self.stats["added"] += 1
                counts["new"] += 1
            box = {"label": label, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
            item = rect_item(image, box, rid, classes, self.level, self.ws.taxonomy, "annotated")
            if item is not None:
                result.append(item)
        self.stats["deleted"] += len(predicted) - len(used)
        counts["deleted"] = len(predicted) - len(used)
        fields = {"lead_time": simulated_lead_time(counts, task_id)}
        if prediction_id is not None:
            fields["parent_prediction"] = prediction_id  # as the labelling page sets it
        self.client.create_annotation(task_id, result, **fields)
        self.stats["annotated"] += 1
        self.stats["negatives"] += not result
        return True

    def _predicted(
        self, task_id: int, image
    ) -> tuple[list[tuple[str, tuple, str | None]], int | None]:
        """The task's pre-drawn boxes: (label, pixel xyxy, result id), rotated ones by
        their bounding box, from its latest prediction (the one the labelling page
        shows), and that prediction's id (None: no prediction)."""
        from .labelstudio.tasks import result_boxes

        predictions = list(self.client.list_task_predictions(task_id))
        if not predictions:
            return [], None
        latest = max(predictions, key=lambda p: (str(p.created_at or ""), p.id or 0))
        out = []
        for r in latest.result or []:
            for b in result_boxes([r], image.width, image.height):
                out.append((b.label, b.xyxy, r.get("id")))
        return out, latest.id


class BackendProcess:
    """`wb serve --connect --field` as a child process, stopped by its PID."""

    def __init__(self, ws, port: int):
        self.ws, self.port = ws, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = ws.services_dir / "backend.log"
        self.service: ManagedProcess | None = None

    def start(self, timeout: float = 180.0) -> None:
        # SIGINT: `wb serve` is a foreground command, stopped as Ctrl-C stops it
        self.service = spawn(
            "`wb serve`",
            [
                sys.executable,
                "-m",
                "workbench",
                "-w",
                str(self.ws.root),
                "serve",
                "--connect",
                "--field",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--poll-seconds",
                "1",
            ],
            self.log_path,
            stop_signal=signal.SIGINT,
            stop_timeout=20.0,
        )
        self.service.wait_healthy(
            self._connected, timeout, interval=0.5, waiting_for="connect to Label Studio"
        )

    def _connected(self) -> bool:
        import httpx

        try:
            return (
                httpx.get(self.url + "/health", timeout=2).status_code == 200
                and b"connected to Label Studio" in self.log_path.read_bytes()
            )
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


# ---- the demo ------------------------------------------------------------------------------


def run_demo(
    ws_root: Path,
    options: DemoOptions,
    echo: Echo = print,
    progress_for: Callable[[str], Callable[[int, int], None]] | None = None,
) -> DemoSummary:
    from .labelstudio import server as ls_server
    from .taxonomy import Taxonomy
    from .workspace import Workspace

    t_start = time.monotonic()
    summary = DemoSummary(workspace=str(ws_root), keep_running=options.keep_running)
    ws = (
        Workspace.open(ws_root)
        if (ws_root / "workbench.toml").exists()
        else Workspace.create(ws_root, Taxonomy.default())
    )
    # image size None: the backbone's default
    ws.set_model_settings(backbone=options.backbone, image_size=options.image_size, level="species")
    pf = progress_for or (lambda stage: None)
    started_ls = False
    backend: BackendProcess | None = None
    review_app = None
    catalog = ws.open_catalog()
    try:
        truth_file = _step_data(ws, catalog, options, summary, echo, pf)
        _step_dedup(ws, catalog, summary, echo, pf)

        echo("[3/8] Label Studio: start the local server, push the tasks")
        port = _free_port(options.ls_port, 8080)
        state, started_ls = ls_server.start(ws, port=port, on_progress=pf("Label Studio start"))
        from .labelstudio.client import connect
        from .labelstudio.project import Project

        client, conn = connect(ws)
        pushed = _push(ws, catalog, client, conn, pf)
        pid = pushed.project_id
        summary.labelstudio = {
            "url": state.url,
            "project_id": pid,
            "project_url": pushed.project_url,
            "tasks_created": pushed.created,
            "tasks": client.task_count(pid),
        }
        echo(
            f"      {state.url}: project {pid}, {summary.labelstudio['tasks']} tasks "
            f"({pushed.created} new)"
        )

        project = Project.of(ws, client, conn)  # the one `_push` created or found
        annotators = Annotators(ws, catalog, client, pid, truth_file)
        _round_one(ws, catalog, project, annotators, options, summary, echo, pf)

        echo(
            "[6/8] wb serve --connect: predictions for the rest through the ML backend; "
            "wb prioritize orders them"
        )
        _step_prioritize(ws, catalog, client, summary, echo, pf)
        backend = BackendProcess(ws, _free_port(options.backend_port, 9090))
        backend.start()
        client.retrieve_predictions(pid)
        from .labelstudio.ordering import apply_order

        apply_order(project, catalog, summary.prioritize["version"])
        summary.services["backend"] = backend.url
        summary.services["field_app"] = f"{backend.url}/app"
        echo(
            f"      field app for phones: {backend.url}/app "
            "(a device token: `wb field token add NAME`; docs/field.md)"
        )
        _round_two(ws, catalog, project, annotators, options, summary, echo, pf)
        _compare(ws, catalog, summary, echo, pf)
        if options.review:
            _step_review(ws, catalog, summary, echo, pf)
        summary.reports = {
            "dedup": str(ws.reports_dir / "dedup" / "index.html"),
            "prioritize": summary.prioritize.get("report"),
            "evaluation": str(ws.reports_dir),
            "models": str(ws.models_dir),
        }
        summary.services["labelstudio"] = state.url
        summary.seconds = round(time.monotonic() - t_start, 1)
        if options.keep_running:
            review_app = _keep_running(ws, summary, echo)
        return summary
    finally:
        catalog.close()
        if backend is not None:
            backend.stop()
        if review_app is not None:
            review_app.stop()
        if started_ls or (options.keep_running is False and ls_server.read_state(ws.services_dir)):
            ls_server.stop(ws)


def _push(ws, catalog, client, conn, pf):
    from .labelstudio.push import push

    return push(ws, catalog, client, conn, level="species", on_progress=pf("push"))


def _step_data(ws, catalog, options, summary, echo, pf) -> Path:
    from .demo_data import generate_demo_data
    from .ingest import ingest

    data = ws.root / "demo-data"
    echo(f"[1/8] demo data: {data}")
    if not (data / "annotations.json").exists():
        generate_demo_data(
            data, seed=options.seed, n_images=options.n_images, on_progress=pf("generate")
        )
    planted = json.loads((data / "planted.json").read_text())
    res = ingest(ws, catalog, data / "images", "folders", on_progress=pf("ingest"))
    counts = catalog.status_counts()
    summary.data = {
        "path": str(data),
        "images": counts["images"]["total"],
        "ingested_now": res.added,
        "planted_exact": len(planted["exact_duplicates"]),
        "planted_near": len(planted["near_duplicates"]),
        "planted_conflicts": len(planted["conflicts"]),
    }
    echo(
        f"      {counts['images']['total']} images in {len(counts['images']['by_label'])} "
        f"folders; planted: {summary.data['planted_exact']} exact copies, "
        f"{summary.data['planted_near']} near copies, {summary.data['planted_conflicts']} conflicts"
    )
    return data / "annotations.json"


def _step_dedup(ws, catalog, summary, echo, pf) -> None:
    from .dedup.report import build_report, write_report
    from .dedup.run import DedupOptions, find_duplicates

    echo("[2/8] wb dedup: duplicates within a class, conflicts across classes")
    run = find_duplicates(catalog, DedupOptions(), progress_for=pf)
    groups = catalog.dup_groups()
    dup = [g for g in groups if g.kind == "duplicate"]
    con = [g for g in groups if g.kind == "conflict"]
    paths = write_report(build_report(catalog, run), ws.reports_dir)
    counts = catalog.status_counts()["images"]["by_status"]
    summary.dedup = {
        "duplicate_groups": len(dup),
        "conflict_groups": len(con),
        "images_duplicate": counts.get("duplicate", 0),
        "images_conflict": counts.get("conflict", 0),
        "report": str(paths["html"]),
    }
    echo(
        f"      {len(dup)} duplicate groups ({counts.get('duplicate', 0)} copies set aside), "
        f"{len(con)} conflicts ({counts.get('conflict', 0)} images held back for experts)"
    )


def _retrain(ws, catalog, echo, epochs: int, max_minutes: float, init_from: str | None):
    from .detection.retrain import RetrainOptions, headline, retrain
    from .detection.train import TrainConfig

    # weights and regimen as `wb retrain` picks them: ImageNet weights when they are here
    # (combi: one head-only epoch, then all layers); round 2 continues round 1's model at
    # a fifth of the rate (all layers at 0.01 threw a trained model into NaN)
    cfg = TrainConfig.for_workspace(
        ws,
        level="species",
        weights="auto",
        regimen="auto",
        head_epochs=1,
        init_from=init_from,
        batch_size=4,
        lr=0.01 if init_from is None else 0.002,
        clip_grad_norm=None if init_from is None else 10.0,
        box_batch_size_per_image=64,  # 4x cheaper CPU steps (docs/demo-data.md)
        max_epochs=epochs,
        patience=epochs,
        max_minutes=max_minutes,
        seed=0,
    )
    report = retrain(
        ws,
        catalog,
        RetrainOptions(train=cfg, promote="if_better", skip={"pull", "refresh"}),
        on_event=_echo_steps(echo),
    )
    version = report.versions[-1] if report.versions else None
    metrics = catalog.model(version).metrics if version else {}
    return version, report.promoted, headline(metrics or {})


def _echo_steps(echo):
    def on_event(e: dict) -> None:
        if e.get("event") == "train_start":
            from .detection.retrain import plan_lines

            for line in plan_lines(e):
                echo(f"      {line}")
        elif e.get("event") == "step" and "status" in e:
            echo(f"      {e['step']:9} {e['status']:8} {e['message']}")
        elif e.get("event") == "epoch":
            val = e.get("val_mAP50")
            echo(
                f"      epoch {e['epoch']:3d}: loss {e.get('loss', float('nan')):.3f}, "
                f"val mAP@0.5 {'-' if val is None else f'{val:.3f}'} ({e.get('seconds', 0):.0f} s)"
            )

    return on_event


def _pull(project, catalog, pf):
    from .labelstudio.pull import pull

    return pull(project, catalog, on_progress=pf("pull"))


def _corrections(stats: dict, before: dict) -> dict:
    """One round's ground-truth boxes: how many started from a pre-drawn box."""
    d = {k: stats[k] - before.get(k, 0) for k in stats}
    d["from_predrawn"] = d["kept"] + d["moved"]
    d["from_predrawn_share"] = round(d["from_predrawn"] / d["boxes"], 3) if d["boxes"] else None
    return d


def _economics(catalog, project_id: int, task_ids: set[int]) -> dict:
    """What `wb report` says of one round's tasks (the seconds per box measured on every
    pulled annotation drawn from scratch: round 1's), with its hours-saved line."""
    from .labelstudio.report import group_summary, hours_saved_line, seconds_per_box

    rows = catalog.annotation_economics(project_id)
    per_box = seconds_per_box(rows)
    group = group_summary("round", [r for r in rows if r.task_id in task_ids], per_box["value"])
    line = hours_saved_line(group, per_box) + (
        "; the demo's times are simulated by its annotators (demo.SIMULATED_SECONDS), not "
        "measured on people"
    )
    return {**group, "seconds_per_box": per_box, "line": line}


def _round_one(ws, catalog, project, annotators, options, summary, echo, pf):
    pid = project.id
    echo(f"[4/8] annotators label a seed batch of {options.seed_batch} images in Label Studio")
    task_of = catalog.ls_task_map(pid)  # image id -> task id
    annotated = {i.id for i in catalog.images(annotated=True)}
    todo = [i for i in sorted(task_of) if i not in annotated]
    need = max(0, options.seed_batch - len(annotated & set(task_of)))
    rng = random.Random(options.seed)
    chosen = rng.sample(todo, min(need, len(todo)))
    bar = pf("annotate")
    for n, image_id in enumerate(chosen, 1):
        annotators.annotate(task_of[image_id], image_id)
        if bar:
            bar(n, len(chosen))
    res = _pull(project, catalog, pf)
    echo(
        f"      {len(chosen)} annotations submitted now ({annotators.stats['negatives']} "
        f"background-only: negatives); wb pull: {res.updated_images} images, {res.boxes} boxes"
    )
    corrections = _corrections(annotators.stats, {})
    echo("[5/8] wb retrain: train, evaluate on the sticky test split, register, promote")
    t0 = time.monotonic()
    version, promoted, metrics = _retrain(
        ws, catalog, echo, options.epochs, options.max_minutes, None
    )
    summary.rounds.append(
        {
            "round": 1,
            "version": version,
            "promoted": promoted,
            "annotated": len(catalog.images(annotated=True)),
            "epochs": options.epochs,
            "train_minutes": round((time.monotonic() - t0) / 60, 2),
            "metrics": metrics,
            "corrections": corrections,
        }
    )


def _step_prioritize(ws, catalog, client, summary, echo, pf):
    from .active.prioritize import PrioritizeConfig, prioritize
    from .active.selection import SelectionConfig

    result = prioritize(
        ws, catalog, PrioritizeConfig(selection=SelectionConfig(strategy="uncertainty", batch=20))
    )
    from .active.report import write_report

    top = result.ranked[:5]
    summary.prioritize = {
        "version": result.version,
        "candidates": len(result.ranked),
        "top": [{"path": t.path, "uncertainty": t.uncertainty} for t in top],
        "report": str(write_report(result, ws.reports_dir, show=20)),
    }
    echo(
        f"      {summary.prioritize['candidates']} unannotated images ranked; most uncertain: "
        + ", ".join(
            f"{Path(t['path']).name} ({t['uncertainty']:.2f})"
            for t in summary.prioritize["top"][:3]
        )
    )


def _round_two(ws, catalog, project, annotators, options, summary, echo, pf):
    pid, client = project.id, project.client
    echo(
        f"[7/8] round 2: annotators take {options.second_batch} tasks in Label Studio's order "
        "(least certain first), correcting the pre-drawn boxes"
    )
    image_of = {t: i for i, t in catalog.ls_task_map(pid).items()}
    ranked = [p.image_id for p in catalog.priorities(summary.prioritize.get("version") or "")]
    before = dict(annotators.stats)
    order = []
    for _ in range(options.second_batch):
        task = client.next_task(pid)
        if task is None:
            break
        image_id = image_of.get(task["id"])
        if image_id is None or not annotators.annotate(task["id"], image_id):
            # not one of ours: skip it so the stream moves on
            client.create_annotation(task["id"], [], was_cancelled=True)
            continue
        order.append(image_id)
    stats = _corrections(annotators.stats, before)
    first_is_most_uncertain = bool(order and ranked and order[0] == ranked[0])
    summary.prioritize.update(
        {"handed_out": len(order), "first_task_is_most_uncertain": first_is_most_uncertain}
    )
    share = stats["from_predrawn_share"]
    echo(
        f"      {len(order)} tasks annotated; first handed out is the most uncertain: "
        f"{first_is_most_uncertain}; of {stats['boxes']} ground-truth boxes "
        f"{stats['from_predrawn']} started from a pre-drawn box "
        f"({'-' if share is None else f'{share:.0%}'}: kept {stats['kept']}, moved "
        f"{stats['moved']}), {stats['added']} drawn new; {stats['deleted']} pre-drawn deleted"
    )
    res = _pull(project, catalog, pf)
    echo(f"      wb pull: {res.updated_images} images, {res.boxes} boxes")
    task_of = catalog.ls_task_map(pid)
    economics = _economics(catalog, pid, {task_of[i] for i in order if i in task_of})
    echo(f"      {economics['line']}")
    promoted = catalog.promoted_model()
    t0 = time.monotonic()
    version, now_promoted, metrics = _retrain(
        ws,
        catalog,
        echo,
        options.epochs_round2,
        options.max_minutes,
        promoted.version if promoted else None,
    )
    summary.rounds.append(
        {
            "round": 2,
            "version": version,
            "promoted": now_promoted,
            "annotated": len(catalog.images(annotated=True)),
            "epochs": options.epochs_round2,
            "train_minutes": round((time.monotonic() - t0) / 60, 2),
            "metrics": metrics,
            "corrections": stats,
            "economics": economics,
        }
    )


def _compare(ws, catalog, summary, echo, pf):
    """Both rounds' models on the same (final) sticky test split."""
    from .detection.evaluate import evaluate_model

    table = {}
    for r in summary.rounds:
        if r["version"]:
            res = evaluate_model(ws, catalog, r["version"], split="test")
            m = res.metrics
            table[r["version"]] = {
                k: m.get(k) for k in ("images", "mAP50", "mAP", "mAR100", "accuracy")
            }
    summary.comparison = table


def _step_review(ws, catalog, summary, echo, pf):
    from .review.predictions import ensure_predictions
    from .review.runner import build_review

    echo("[8/8] wb review: the FiftyOne dataset with both model versions evaluated")
    last = summary.rounds[-1]["version"]
    ensure_predictions(ws, catalog, last, progress_for=pf)  # last and the one before it
    _explain_test_photos(ws, catalog, last, summary, echo, pf)  # review shows the heatmaps
    built = build_review(ws, model=last, on_progress=None)
    summary.review = {
        "dataset": built.get("dataset"),
        "samples": built.get("samples"),
        "views": built.get("views"),
        "evaluations": built.get("evaluations"),
    }
    echo(
        f"      dataset {built.get('dataset')}: {built.get('samples')} samples, views: "
        + ", ".join(built.get("views") or [])
    )


EXPLAIN_PHOTOS = 12  # test photos the demo explains (EigenCAM: about one prediction each)


def _explain_test_photos(ws, catalog, version, summary, echo, pf) -> None:
    """`wb explain` on the first test photos: heatmaps per box for the review."""
    from .explain.run import ImageToExplain, explain_images

    photos = catalog.images(status="active", annotated=True, split="test")[:EXPLAIN_PHOTOS]
    run = explain_images(
        ws,
        catalog,
        [ImageToExplain(im.path, im.id) for im in photos],
        version=version,
        on_progress=pf("explain"),
    )
    summary.explain = {
        "version": version,
        "images": len(photos),
        "detections": len(run.detections),
        "flagged": run.flagged,
        "sheet": str(run.sheet) if run.sheet else None,
    }
    echo(
        f"      wb explain: {len(run.detections)} boxes on {len(photos)} test photos, "
        f"{run.flagged} with their evidence mostly outside the box; heatmaps: "
        f"{run.sheet or 'none (no box to explain)'}"
    )


def _keep_running(ws, summary, echo):
    from .review.runner import ReviewApp

    app = ReviewApp(ws)
    app.start()
    summary.services["review"] = app.url
    echo("services running (Ctrl-C stops them all):")
    for k, v in summary.services.items():
        echo(f"  {k:12} {v}")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        echo("stopping ...")
    return app
