"""Running a grid: one registered model per cell (per species for a per-species
detection cell), scored on every test set, with what is done kept in the study's folder
so that running the same grid again continues where it stopped.

The study folder is ``<workspace>/reports/studies/<name>/``:

- ``state.json``: per cell key its task, values, settings, status (``trained``: its
  versions are registered, scores pending; ``done``) and versions with their scores,
  written whole after every change;
- ``runs/<key>/``: a classifier cell's per-epoch checkpoint while it trains;
- ``table.csv``, ``table.md``, ``chart.png`` (``report.py``).

Each version a cell registers carries ``study_cell = "<name>/<key>"`` in its metrics, so a
run killed after registering and before writing ``state.json`` adopts the version on the
next run instead of training it again. Cells never promote their models:
`wb models promote VERSION` does.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..faults import fault_point
from ..fsutil import atomic_write_json
from .grid import Cell, Grid

logger = logging.getLogger(__name__)

STATE = "state.json"
RUNS = "runs"
CATALOG_TEST = "catalog-test"
Event = Callable[[dict], None]


def study_dir(ws, name: str) -> Path:
    return ws.reports_dir / "studies" / name


def load_state(folder: Path) -> dict[str, Any]:
    import json

    path = folder / STATE
    if not path.is_file():
        return {"cells": {}}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WorkbenchError(
            f"{path} cannot be read ({exc}); move it away to run the study afresh "
            "(its registered models stay in `wb models`)"
        ) from None


def _save_state(folder: Path, state: dict) -> None:
    atomic_write_json(folder / STATE, state)


def _tag(grid: Grid, cell: Cell) -> str:
    return f"{grid.name}/{cell.key}"


def _tagged_versions(registry, tag: str) -> list[str]:
    return [mv.version for mv in registry.list() if mv.metrics.get("study_cell") == tag]


def run_study(ws, catalog, grid: Grid, on_event: Event | None = None) -> dict[str, Any]:
    """Run every cell of ``grid`` not done yet; returns the study's state."""
    from ..detection.registry import Registry

    emit = on_event or (lambda e: None)
    folder = study_dir(ws, grid.name)
    folder.mkdir(parents=True, exist_ok=True)
    state = load_state(folder)
    state["grid"] = grid.to_dict()
    cells = grid.cells()
    registry = Registry.of(ws, catalog)
    for test in grid.test_sets:  # before any training: a wrong path fails now
        if not test.path.exists():
            raise WorkbenchError(f"test set {test.name}: {test.path} does not exist")
    _check_classify_test_sets(ws, grid, cells)
    for n, cell in enumerate(cells, 1):
        record = state["cells"].get(cell.key)
        if record and record["status"] == "done":
            emit({"event": "cell", "status": "done", "n": n, "of": len(cells), "cell": cell.label})
            continue
        tag = _tag(grid, cell)
        run_dir = folder / RUNS / cell.key
        if not record:
            record = {
                "label": cell.label,
                "task": cell.task,
                "values": cell.values,
                "settings": cell.settings,
                "status": "pending",
                "versions": [],
            }
            state["cells"][cell.key] = record
        if record["status"] == "pending":
            # killed after registering, before state.json said so: the version is ours
            adopted = _tagged_versions(registry, tag)
            if adopted:
                record["versions"] = [{"version": v, "scores": []} for v in adopted]
                record["status"] = "trained"
                shutil.rmtree(run_dir, ignore_errors=True)
        if record["status"] == "pending":
            emit(
                {
                    "event": "cell",
                    "status": "resume" if (run_dir / "checkpoint.pt").is_file() else "start",
                    "n": n,
                    "of": len(cells),
                    "cell": cell.label,
                }
            )
            train = _train_classifier if cell.task == "classify" else _train_detector
            versions = train(ws, catalog, cell, tag, run_dir, emit)
            record["versions"] = [{"version": v, "scores": []} for v in versions]
            record["status"] = "trained"
            _save_state(folder, state)
            fault_point("study.trained")
        score = _score_classifier if cell.task == "classify" else _score_detector
        for entry in record["versions"]:
            entry["scores"] = score(ws, catalog, entry["version"], grid)
            mv = registry.get(entry["version"])
            entry["species"] = mv.config.get("train", {}).get("species")
        record["status"] = "done"
        _save_state(folder, state)
        emit(
            {
                "event": "cell",
                "status": "finished",
                "n": n,
                "of": len(cells),
                "cell": cell.label,
                "versions": [e["version"] for e in record["versions"]],
            }
        )
    _save_state(folder, state)
    return state


# ---- classify ------------------------------------------------------------------------
def _classify_config(cell: Cell):
    from ..classify.config import ClassifyConfig

    s = dict(cell.settings)
    if isinstance(s.get("positive"), str):
        s["positive"] = [s["positive"]]
    return ClassifyConfig(**s)


def _check_classify_test_sets(ws, grid: Grid, cells: list[Cell]) -> None:
    """Each classifier cell's classes against each test folder, before any training (a
    folder of a class the cell does not have is an error naming it)."""
    from ..classify.dataset import class_names, folder_images

    checked = set()
    for cell in cells:
        if cell.task != "classify":
            continue
        config = _classify_config(cell)
        classes = class_names(config, ws.taxonomy)
        for test in grid.test_sets:
            if (test.name, tuple(classes), config.negatives) not in checked:
                folder_images(test.path, classes, ws.taxonomy, config)
                checked.add((test.name, tuple(classes), config.negatives))


def _train_classifier(ws, catalog, cell: Cell, tag: str, run_dir: Path, emit: Event) -> list[str]:
    from ..classify.train import train_classifier

    mv = train_classifier(
        ws,
        catalog,
        _classify_config(cell),
        on_progress=lambda d, t: emit({"event": "epoch", "done": d, "total": t}),
        run_dir=run_dir,
        extra_metrics={"study_cell": tag},
        promote_first=False,
    )
    return [mv.version]


def _score_classifier(ws, catalog, version: str, grid: Grid) -> list[dict]:
    from ..classify.evaluate import evaluate_classifier

    sets = {t.name: t.path for t in grid.test_sets}
    result = evaluate_classifier(ws, catalog, version, sets)
    keep = ("set", "n", "accuracy", "precision", "recall", "f_score", "parameters")
    return [{k: row[k] for k in keep if k in row} for row in result["sets"]]


# ---- detect --------------------------------------------------------------------------
def detect_options(ws, cell: Cell):
    """The `wb retrain` options of a detection cell: train and register; no pull,
    promotion, prediction or Label Studio refresh (the study evaluates each version)."""
    from ..detection.retrain import RetrainOptions
    from ..detection.train import TrainConfig

    s = dict(cell.settings)
    per_species = s.pop("per_species", False)
    if "epochs" in s:
        s["max_epochs"] = s.pop("epochs")
    return RetrainOptions(
        train=TrainConfig.for_workspace(ws, **s),
        per_species=per_species,
        promote="never",
        skip={"pull", "evaluate", "predict", "refresh"},  # the study scores each version
    )


def _train_detector(ws, catalog, cell: Cell, tag: str, run_dir: Path, emit: Event) -> list[str]:
    """A detection cell restarts when interrupted (`wb retrain` discards the killed run's
    checkpoint); the versions it had registered are adopted through their tag only once
    tagged, so a per-species cell killed mid-way may leave untagged versions behind."""
    from ..detection.registry import Registry
    from ..detection.retrain import retrain

    epochs = {"max": None}

    def on_event(e: dict) -> None:
        if e.get("event") == "train_start":
            epochs["max"] = e.get("max_epochs")
        elif e.get("event") == "epoch":
            emit({"event": "epoch", "done": e["epoch"] + 1, "total": epochs["max"]})
        elif e.get("event") == "step":
            emit({"event": "step", "message": e.get("message")})

    report = retrain(ws, catalog, detect_options(ws, cell), on_event=on_event)
    failed = [s for s in report.steps if s.status == "failed"]
    if failed:
        raise WorkbenchError(f"cell {cell.label}: {failed[0].step} failed: {failed[0].message}")
    if not report.versions:
        raise WorkbenchError(f"cell {cell.label}: training registered no model")
    registry = Registry.of(ws, catalog)
    for version in report.versions:
        registry.update_metrics(version, {"study_cell": tag})
    return list(report.versions)


def _score_detector(ws, catalog, version: str, grid: Grid) -> list[dict]:
    """mAP@0.5 and mAR@100 on the catalog's test split (kept in the version's metrics,
    as `wb retrain` keeps them) and on each outside test set."""
    from ..detection.evaluate import EvaluationError, evaluate_model, evaluate_outside
    from ..detection.registry import Registry

    try:
        m = evaluate_model(ws, catalog, version, split="test").metrics
    except EvaluationError as exc:
        # a per-species model whose species has no test image: a row without scores
        logger.warning("%s", exc)
        m = {"images": 0}
    Registry.of(ws, catalog).update_metrics(
        version,
        {
            "mAP50": m.get("mAP50"),
            "mAP": m.get("mAP"),
            "mAR100": m.get("mAR100"),
            "test_images": m.get("images"),
            "test": m,
        },
    )
    rows = [_detect_row(CATALOG_TEST, m)]
    for test in grid.test_sets:
        m = evaluate_outside(ws, version, test.path, test.format, catalog=catalog).metrics
        rows.append(_detect_row(test.name, m))
    return rows


def _detect_row(name: str, m: dict) -> dict:
    return {"set": name, "n": m.get("images"), "mAP50": m.get("mAP50"), "mAR100": m.get("mAR100")}
