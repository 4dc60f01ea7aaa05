"""Running a grid: one registered model per cell (per species for a per-species
detection cell), scored on every test set, with what is done kept in the study's folder
so that running the same grid again continues where it stopped.

The study folder is ``<workspace>/reports/studies/<name>/``:

- ``state.json``: per cell key its task, values, settings, status (``trained``: its
  versions are registered, scores pending; ``done``) and versions with their scores,
  written whole after every change;
- ``runs/<key>/``: a classifier cell's per-epoch checkpoint while it trains; a detection
  cell's ``runs/<key>/<species or "all">/`` (`wb retrain`'s run folder, checkpoint
  included), removed once the cell's versions are registered;
- ``table.csv``, ``table.md``, ``chart.png`` (``report.py``).

Each version a cell registers carries ``study_cell = "<name>/<key>"`` in its metrics from
the moment it is registered, so a run killed after registering and before writing
``state.json`` adopts the version on the next run instead of training it again (a
per-species cell: the species registered are adopted, the others train or resume). Cells
never promote their models:
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
        if record["status"] == "pending" and cell.task == "classify":
            # killed after registering, before state.json said so: the version is ours
            # (a detection cell adopts its own, per species: `_train_detector`)
            adopted = _tagged_versions(registry, tag)
            if adopted:
                record["versions"] = [{"version": v, "scores": []} for v in adopted]
                record["status"] = "trained"
                shutil.rmtree(run_dir, ignore_errors=True)
        if record["status"] == "pending":
            emit(
                {
                    "event": "cell",
                    "status": "resume" if _interrupted(run_dir, registry, tag) else "start",
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
            shutil.rmtree(run_dir, ignore_errors=True)  # a killed register's leftovers
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


def _interrupted(run_dir: Path, registry, tag: str) -> bool:
    """Whether a cell has work of an earlier run to continue: a checkpoint, or (a
    per-species detection cell) versions registered before it was killed."""
    if run_dir.is_dir() and any(run_dir.rglob("checkpoint.pt")):
        return True
    return bool(_tagged_versions(registry, tag))


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
def detect_options(
    ws, cell: Cell, run_root: Path | None = None, tag: str | None = None, done=frozenset()
):
    """The `wb retrain` options of a detection cell: train and register; no pull,
    promotion, prediction or Label Studio refresh (the study evaluates each version).
    With ``run_root`` the cell's runs checkpoint there and an interrupted one of the same
    settings and data resumes; ``tag`` goes into each version's metrics as it is
    registered; ``done``: the species whose models the cell registered already."""
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
        resume="matching" if run_root is not None else False,
        run_root=run_root,
        skip_species=frozenset(done),
        extra_metrics={"study_cell": tag} if tag else {},
    )


def _train_detector(ws, catalog, cell: Cell, tag: str, run_dir: Path, emit: Event) -> list[str]:
    """Train a detection cell through `wb retrain`'s path, resumably: each model
    checkpoints into ``run_dir/<species or "all">/`` after every epoch and an interrupted
    one resumes after its last finished epoch; a version is tagged with the cell as it is
    registered, so the versions of an earlier, killed run are adopted (per species) and
    only the rest are trained. Returns the cell's versions, in training order."""
    from ..detection.registry import Registry
    from ..detection.retrain import retrain, training_targets

    registry = Registry.of(ws, catalog)
    adopted: dict[str | None, str] = {}
    for version in _tagged_versions(registry, tag):
        species = registry.get(version).config.get("train", {}).get("species")
        adopted.setdefault(species, version)  # the first registered, were there two
    options = detect_options(ws, cell, run_dir, tag, {s for s in adopted if s is not None})
    targets = [species for species, _ in training_targets(ws, options)]
    if all(species in adopted for species in targets):
        return [adopted[s] for s in targets]

    epochs = {"max": None}

    def on_event(e: dict) -> None:
        if e.get("event") == "train_start":
            epochs["max"] = e.get("max_epochs")
        elif e.get("event") == "epoch":
            emit({"event": "epoch", "done": e["epoch"] + 1, "total": epochs["max"]})
        elif e.get("event") == "step":
            emit({"event": "step", "message": e.get("message")})

    report = retrain(ws, catalog, options, on_event=on_event)
    failed = [s for s in report.steps if s.status == "failed"]
    if failed:
        raise WorkbenchError(f"cell {cell.label}: {failed[0].step} failed: {failed[0].message}")
    if not report.versions:
        raise WorkbenchError(f"cell {cell.label}: training registered no model")
    new = iter(report.versions)
    return [adopted[s] if s in adopted else next(new) for s in targets]


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
