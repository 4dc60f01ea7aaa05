"""A study's grid: a TOML file of settings every run shares and axes whose every
combination is one run (a *cell*). Parsing checks every name and value before any work:
an unknown axis, a value outside an axis's choices or an empty grid is refused with what
is allowed. No torch here (backbone names are checked through their registries lazily).

    name = "classifier-study"      # optional: the file's stem
    task = "classify"              # detect | classify (or make `task` an axis)

    [settings]                     # every cell
    epochs = 2
    image_size = 64

    [axes]                         # one cell per combination, in this order
    backbone = ["efficientnet_lite0", "resnet18"]
    regimen = ["transfer", "combi"]

    [test_sets]                    # scored on each, besides the catalog's test split
    ood = "photos/ood"             # classify: one sub-folder per class
    # detect: ood = { path = "photos/ood", format = "coco" }

A cell's ``key`` is a hash of its task and full settings, so a cell keeps its key when
other cells are added or removed, and changing a shared setting makes new cells.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError

TASKS = ("detect", "classify")
TOP_KEYS = ("name", "task", "settings", "axes", "test_sets")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DETECT_TEST_FORMATS = ("coco", "voc", "yolo", "labelstudio")  # formats with boxes


class GridError(WorkbenchError):
    """A grid file that cannot run as written."""


# ---- what each task's cells may set ----------------------------------------------------
def _choice(choices: Callable[[], list[str]] | tuple[str, ...]):
    def check(value: Any) -> str | None:
        known = list(choices() if callable(choices) else choices)
        return None if value in known else f"one of: {', '.join(map(str, known))}"

    return check


def _integer(low: int):
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return None if ok else f"a whole number >= {low}"

    return check


def _positive_number(value: Any) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return None if ok else "a number above 0"


def _non_negative_number(value: Any) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return None if ok else "a number >= 0"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _class_names(value: Any) -> str | None:
    ok = isinstance(value, str) or (
        isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    )
    return None if ok else "a class name or a list of class names"


def _classifier_backbones() -> list[str]:
    from ..classify.models import list_classifiers

    return list_classifiers()


def _detector_backbones() -> list[str]:
    from ..detection.backbones import list_backbones

    return list_backbones()


def _classify_regimens() -> tuple[str, ...]:
    from ..classify.config import REGIMENS

    return REGIMENS


def _detect_regimens() -> tuple[str, ...]:
    from ..detection.names import REGIMENS

    return REGIMENS


def _losses() -> tuple[str, ...]:
    from ..detection.names import LOSSES

    return LOSSES


SETTINGS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "classify": {
        "backbone": _choice(_classifier_backbones),
        "regimen": _choice(_classify_regimens),
        "level": _choice(("species", "category")),
        "positive": _class_names,
        "negatives": _boolean,
        "epochs": _integer(1),
        "batch_size": _integer(1),
        "lr": _positive_number,
        "patience": _integer(1),
        "image_size": _integer(16),
        "seed": _integer(0),
        "head_epochs": _integer(0),
        "max_minutes": _positive_number,
    },
    "detect": {
        "backbone": _choice(_detector_backbones),
        "regimen": _choice(_detect_regimens),
        "loss": _choice(_losses),
        "per_species": _boolean,
        "negatives": _boolean,
        "level": _choice(("species", "category")),
        "weights": _choice(("auto", "imagenet", "none")),
        "epochs": _integer(1),
        "batch_size": _integer(1),
        "lr": _positive_number,
        "patience": _integer(1),
        "image_size": _integer(32),
        "seed": _integer(0),
        "head_epochs": _integer(0),
        "max_minutes": _positive_number,
        "gamma_pos": _non_negative_number,
        "gamma_neg": _non_negative_number,
        "clip": _non_negative_number,
    },
}


def allowed_settings(task: str) -> list[str]:
    return list(SETTINGS[task])


# ---- the grid -----------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One run of the grid: its task, the axes' values that make it, every setting."""

    key: str
    task: str
    values: dict[str, Any]
    settings: dict[str, Any]

    @property
    def label(self) -> str:
        """``backbone=resnet18 regimen=transfer``: the cell as the table shows it."""
        return " ".join(f"{k}={show_value(v)}" for k, v in self.values.items()) or "(one run)"


def show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "+".join(map(str, value))
    return str(value)


@dataclass(frozen=True)
class TestSet:
    name: str
    path: Path
    format: str | None = None  # detect only: how its boxes are stored


@dataclass
class Grid:
    name: str
    source: Path | None
    tasks: list[str]
    settings: dict[str, Any]
    axes: dict[str, list[Any]]
    test_sets: list[TestSet] = field(default_factory=list)

    def cells(self) -> list[Cell]:
        """Every combination of the axes' values, the first axis varying slowest."""
        out = []
        names = list(self.axes)
        for combo in itertools.product(*(self.axes[n] for n in names)):
            values = dict(zip(names, combo))
            task = values.get("task", self.settings.get("task"))
            settings = {k: v for k, v in {**self.settings, **values}.items() if k != "task"}
            out.append(Cell(cell_key(task, settings), task, values, settings))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": str(self.source) if self.source else None,
            "tasks": self.tasks,
            "settings": self.settings,
            "axes": self.axes,
            "test_sets": [
                {"name": t.name, "path": str(t.path), "format": t.format} for t in self.test_sets
            ],
        }


def cell_key(task: str, settings: dict[str, Any]) -> str:
    blob = json.dumps({"task": task, "settings": settings}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def read_grid(path: Path | str, extra_test_sets: dict[str, str] | None = None) -> Grid:
    """The grid in the TOML file ``path``; ``extra_test_sets`` (``NAME -> FOLDER``, the
    command line's ``--test-set``) join the file's. Relative test-set paths in the file
    are relative to the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise GridError(f"{path}: no such grid file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise GridError(f"{path}: cannot read it as TOML ({exc})") from None
    return parse_grid(data, path.stem, path, extra_test_sets)


def parse_grid(
    data: dict[str, Any],
    default_name: str,
    source: Path | None = None,
    extra_test_sets: dict[str, str] | None = None,
) -> Grid:
    where = str(source) if source else "grid"
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise GridError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a grid has: {', '.join(TOP_KEYS)}"
        )
    name = data.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise GridError(
            f"{where}: name {name!r} must be letters, digits, '.', '_' or '-' (a folder name)"
        )
    settings = dict(data.get("settings") or {})
    axes = data.get("axes") or {}
    if not isinstance(axes, dict) or not isinstance(settings, dict):
        raise GridError(f"{where}: [settings] and [axes] must be tables")
    if not axes:
        raise GridError(
            f"{where}: empty grid (no [axes]): add at least one axis, e.g. "
            '[axes] regimen = ["transfer", "combi"]'
        )
    for axis, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(
                f"{where}: axis '{axis}' has no values: give it a list, e.g. {axis} = [...]"
            )
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise GridError(f"{where}: axis '{axis}' repeats a value: {values}")
    both = sorted(set(axes) & set(settings))
    if both:
        raise GridError(f"{where}: {', '.join(both)} is both a setting and an axis: keep one")
    if "task" in data:
        if "task" in axes:
            raise GridError(f"{where}: task is both a top-level key and an axis: keep one")
        settings["task"] = data["task"]
    tasks = axes["task"] if "task" in axes else [settings.get("task")]
    for task in tasks:
        if task not in TASKS:
            raise GridError(
                f"{where}: task {task!r} is not known; set task = one of: {', '.join(TASKS)}"
            )
    for task in tasks:
        allowed = SETTINGS[task]
        for key in [*settings, *axes]:
            if key == "task":
                continue
            if key not in allowed:
                raise GridError(
                    f"{where}: '{key}' is not a {task} setting; allowed: {', '.join(allowed)}"
                )
        for key, value in settings.items():
            if key != "task":
                _check_value(where, task, key, value, "setting")
        for key, values in axes.items():
            if key != "task":
                for value in values:
                    _check_value(where, task, key, value, "axis")
    test_sets = _test_sets(where, data.get("test_sets") or {}, source, tasks)
    for name_, folder in (extra_test_sets or {}).items():
        if any(t.name == name_ for t in test_sets):
            raise GridError(f"test set '{name_}' is named twice (the grid and --test-set)")
        if "detect" in tasks:
            raise GridError(
                f"--test-set {name_}: a detection study's extra sets need their format; "
                f'give them in the grid: [test_sets] {name_} = {{ path = "...", format = "coco" }}'
            )
        test_sets.append(TestSet(name_, Path(folder)))
    return Grid(name, source, list(tasks), settings, dict(axes), test_sets)


def _check_value(where: str, task: str, key: str, value: Any, kind: str) -> None:
    problem = SETTINGS[task][key](value)
    if problem:
        raise GridError(f"{where}: {kind} {key} = {value!r} for {task}: must be {problem}")


def _test_sets(where: str, table: dict, source: Path | None, tasks: list[str]) -> list[TestSet]:
    base = source.parent if source else Path.cwd()
    out = []
    for name, spec in table.items():
        if not NAME_RE.match(name) or name == "catalog-test":
            raise GridError(f"{where}: test set name '{name}' is reserved or not a plain name")
        if isinstance(spec, str):
            path, fmt = spec, None
        elif isinstance(spec, dict) and isinstance(spec.get("path"), str):
            path, fmt = spec["path"], spec.get("format")
        else:
            raise GridError(f'{where}: test set {name}: write {name} = "FOLDER"')
        if "detect" in tasks and fmt not in DETECT_TEST_FORMATS:
            raise GridError(
                f"{where}: test set {name}: a detection study scores boxes, so say how they "
                f'are stored: {name} = {{ path = "{path}", format = "coco" }} '
                f"(formats: {', '.join(DETECT_TEST_FORMATS)})"
            )
        p = Path(path).expanduser()
        out.append(TestSet(name, p if p.is_absolute() else base / p, fmt))
    return out
