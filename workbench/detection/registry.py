"""The model registry: ``models/<version>/`` written whole or not at all.

A version folder holds ``weights.pt`` (the detector's state dict), ``config.json``
(the exact training config, classes, level, parent), ``metrics.json``, ``data.json``
(image ids per split and a hash of the annotations used), and the training log
(``metrics.csv``, ``curves.png``). It is assembled in a hidden temporary folder and
renamed into place, so a reader never sees half a model. The catalog's ``models``
table lists versions and which one is promoted (the serving model). Once registered,
a folder only gains files, each written whole (``add_file``): `wb models export` adds
``model.onnx`` and its verification record ``model.onnx.json`` (``onnx.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..catalog.records import ModelRecord
from ..errors import WorkbenchError
from ..faults import fault_point
from ..fsutil import atomic_write_json, remove_leftover_temps, require_free_space
from ..services import pid_alive

WEIGHTS = "weights.pt"
CONFIG = "config.json"
METRICS = "metrics.json"
DATA = "data.json"
VERSION_RE = re.compile(r"^v(\d{3,})$")
INCOMING = ".incoming-"  # + the writer's PID + "-": a version folder being assembled
INCOMING_RE = re.compile(r"^\.incoming-(\d+)-")
#: in a version folder until the catalog lists it: the writer's PID. A folder that has
#: it, is not listed and whose writer is gone was killed between rename and catalog.
REGISTERING = ".registering"
#: an .incoming folder without a PID in its name (written before names carried one) is
#: left over when it is this old
STALE_INCOMING_S = 3600.0


@dataclass(frozen=True)
class ModelVersion(ModelRecord):
    """A catalog ``ModelRecord`` plus where its folder lies."""

    path: Path

    @classmethod
    def at(cls, root: Path, record: ModelRecord) -> ModelVersion:
        return cls(
            **{f.name: getattr(record, f.name) for f in fields(ModelRecord)},
            path=Path(root) / record.version,
        )

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    def summary(self) -> dict[str, Any]:
        """The `wb models --json` entry."""
        return {
            "version": self.version,
            "promoted": self.promoted,
            "metrics": self.metrics,
            "parent": self.parent,
            "created_at": self.created_at,
            "backbone": self.backbone,
            "level": self.level,
            "classes": self.classes,
            "task": self.task,
        }


class Registry:
    def __init__(self, models_dir: Path, catalog):
        self.root = Path(models_dir)
        self.catalog = catalog

    @classmethod
    def of(cls, ws, catalog) -> Registry:
        return cls(ws.models_dir, catalog)

    # ---- reading ------------------------------------------------------------------
    def _version(self, row: ModelRecord) -> ModelVersion:
        return ModelVersion.at(self.root, row)

    def list(self) -> list[ModelVersion]:
        return [self._version(r) for r in self.catalog.models()]

    def get(self, version: str) -> ModelVersion:
        row = self.catalog.model(version)
        if row is None:
            known = [m.version for m in self.catalog.models()]
            raise WorkbenchError(
                f"no model version '{version}'; known versions: "
                f"{', '.join(known) or 'none yet (run `wb retrain`)'}"
            )
        return self._version(row)

    def promoted(self, task: str = "detect") -> ModelVersion | None:
        """The promoted version of ``task``, as the catalog's ``promoted_model()`` answers."""
        row = self.catalog.promoted_model(task=task)
        return self._version(row) if row else None

    def resolve(self, version: str | None, task: str = "detect") -> ModelVersion:
        """A named version of ``task``, or its promoted one when ``version`` is None."""
        if version is not None:
            mv = self.get(version)
            if mv.task != task:
                hint = (
                    "; a classifier answers through `wb classify predict | evaluate`"
                    if mv.task == "classify"
                    else ""
                )
                raise WorkbenchError(
                    f"model {version} is a '{mv.task}' model, not a '{task}' one: "
                    f"`wb models` lists each version's task{hint}"
                )
            return mv
        current = self.promoted(task=task)
        if current is None:
            what, how = (
                ("classifier", "wb classify train")
                if task == "classify"
                else (
                    "model",
                    "wb retrain",
                )
            )
            raise WorkbenchError(
                f"no promoted {what} yet: run `{how}`, or `wb models promote VERSION`"
            )
        return current

    # ---- writing ------------------------------------------------------------------
    def next_version(self) -> str:
        taken = [
            int(m.group(1))
            for name in [
                *(p.name for p in self.root.iterdir()),
                *(m.version for m in self.catalog.models()),
            ]
            if (m := VERSION_RE.match(name))
        ]
        return f"v{max(taken, default=0) + 1:03d}"

    def register(
        self,
        weights: Path,
        config: dict[str, Any],
        classes: list[str],
        level: str | None,
        metrics: dict[str, Any],
        data: dict[str, Any],
        parent: str | None = None,
        extra_files: list[Path] = (),
        task: str = "detect",
    ) -> ModelVersion:
        """Write a new version folder whole, then record it in the catalog."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_leftovers()
        copies = [Path(weights), *(Path(f) for f in extra_files if Path(f).is_file())]
        require_free_space(
            self.root, sum(f.stat().st_size for f in copies), "registering the model"
        )
        tmp = Path(tempfile.mkdtemp(prefix=f"{INCOMING}{os.getpid()}-", dir=self.root))
        try:
            shutil.copyfile(weights, tmp / WEIGHTS)
            fault_point("register.copied")
            for f in extra_files:
                if Path(f).is_file():
                    shutil.copyfile(f, tmp / Path(f).name)
            atomic_write_json(tmp / METRICS, metrics)
            atomic_write_json(tmp / DATA, data)
            (tmp / REGISTERING).write_text(str(os.getpid()))
            for _ in range(100):
                version = self.next_version()
                full = {
                    "version": version,
                    "parent": parent,
                    "level": level,
                    "classes": classes,
                    "task": task,
                    "train": config,
                }
                atomic_write_json(tmp / CONFIG, full)
                try:
                    os.rename(tmp, self.root / version)  # fails if the name was taken
                    break
                except OSError:
                    continue
            else:
                raise WorkbenchError(f"could not find a free version name in {self.root}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fault_point("register.renamed")  # the folder is whole, the catalog does not list it
        self.catalog.add_model(version, parent, level, classes, metrics, full, task=task)
        (self.root / version / REGISTERING).unlink(missing_ok=True)
        return self.get(version)

    def remove_leftovers(self) -> list[Path]:
        """Remove the half-assembled version folders a killed registration left (their
        writer's PID is gone; an old-style name without a PID: an hour old), a whole
        ``vNNN`` folder it renamed into place but never got into the catalog, and the
        temporary files of killed writes in the registry's folders. They were never
        registered, so nothing refers to them (the run stays for ``--resume``); a live
        writer's folder is kept."""
        removed = []
        listed = {m.version for m in self.catalog.models()}
        for marker in sorted(self.root.glob(f"v*/{REGISTERING}")):
            folder = marker.parent
            try:
                writer = int(marker.read_text().strip())
            except (OSError, ValueError):
                continue
            if folder.name in listed:
                marker.unlink(missing_ok=True)  # killed just after the catalog listed it
            elif VERSION_RE.match(folder.name) and not pid_alive(writer):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        for path in sorted(self.root.glob(INCOMING + "*")):
            m = INCOMING_RE.match(path.name)
            try:
                stale = (
                    not pid_alive(int(m.group(1)))
                    if m
                    else time.time() - path.stat().st_mtime > STALE_INCOMING_S
                )
            except OSError:  # gone meanwhile
                continue
            if stale and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        for folder in (self.root, *self.root.glob("v*")):  # update_metrics writes there
            removed += remove_leftover_temps(folder)
        return removed

    def update_metrics(self, version: str, metrics: dict[str, Any]) -> ModelVersion:
        """Merge ``metrics`` into the version's metrics (file and catalog)."""
        mv = self.get(version)
        merged = {**mv.metrics, **metrics}
        atomic_write_json(mv.path / METRICS, merged)
        self.catalog.set_model_metrics(version, merged)
        return self.get(version)

    def add_file(
        self, version: str, name: str, write: Callable[[Path], None], size_hint: int = 0
    ) -> Path:
        """Add the file ``name`` (an export such as ``model.onnx``) to a registered
        version's folder, whole or not at all: ``write(tmp)`` makes it at a temporary path
        beside it (``fsutil``'s naming, so a killed writer's leftover goes with
        ``remove_leftovers``), and only when ``write`` returns is it synced and renamed
        into place, replacing an older one. When ``write`` raises, nothing is kept. The
        files training wrote are never touched: additions only."""
        if name in (WEIGHTS, CONFIG, METRICS, DATA) or Path(name).name != name:
            raise ValueError(f"{name!r} is not a file a version folder can gain")
        mv = self.get(version)
        require_free_space(mv.path, size_hint, f"writing {name} into {version}")
        fd, tmp = tempfile.mkstemp(dir=mv.path, prefix=f".{name}.{os.getpid()}-", suffix=".tmp")
        os.close(fd)
        try:
            write(Path(tmp))
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, mv.path / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return mv.path / name

    def promote(self, version: str) -> ModelVersion:
        mv = self.get(version)
        if not mv.weights_path.is_file():
            raise WorkbenchError(
                f"model {version} has no weights at {mv.weights_path}; it cannot serve"
            )
        self.catalog.promote_model(version)
        return self.get(version)


def load_config(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / CONFIG).read_text())
