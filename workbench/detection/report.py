"""Evaluation reports: the study's table (as rows), JSON, and PNG charts.

Rows are plain data so the CLI can render them with rich and tests can read them.
Charts use matplotlib's object API on an Agg canvas (no pyplot, no global backend),
and every file is written whole or not at all.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_bytes, atomic_write_json, remove_leftover_temps
from .metrics import EvaluationResult

HEADLINE = "all"
MEASURES = (("AP50", "AP@0.5"), ("AR100", "AR@100"), ("accuracy", "accuracy"))
_COLOURS = ("#4c72b0", "#dd8452", "#55a868")


def report_stem(version: str | None, split: str | None) -> str:
    """``eval_<version>_<split>`` with anything unsafe in a file name replaced."""

    def safe(x: str | None) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", str(x or "none")).strip("-") or "none"

    return f"eval_{safe(version)}_{safe(split)}"


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def fmt_delta(a: float | None, b: float | None, digits: int = 3) -> str:
    if a is None or b is None:
        return "-"
    return f"{b - a:+.{digits}f}"


# ---- tables ----------------------------------------------------------------------
def table_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """The study's table: one row per class, then the headline row (mAP@0.5, mAR@100,
    overall accuracy). Classes without images or boxes show ``-``."""
    header = ["class", "images", "boxes", "AP@0.5", "AR@100", "accuracy"]
    rows = [
        [
            c,
            str(v.get("images", 0)),
            str(v.get("gt_boxes", 0)),
            fmt(v["AP50"]),
            fmt(v["AR100"]),
            fmt(v["accuracy"]),
        ]
        for c, v in result.per_class.items()
    ]
    rows.append(
        [
            HEADLINE,
            str(result.images),
            str(result.gt_boxes),
            fmt(result.mAP50),
            fmt(result.mAR100),
            fmt(result.accuracy),
        ]
    )
    return header, rows


def headline_text(result: EvaluationResult) -> str:
    return (
        f"model {result.model}  split {result.split}  images {result.images}  "
        f"mAP@0.5 {fmt(result.mAP50)}  mAP@[.5:.95] {fmt(result.mAP)}  "
        f"mAR@100 {fmt(result.mAR100)}  accuracy {fmt(result.accuracy)}  "
        f"(score threshold {result.config.score_threshold})"
    )


def confusion_rows(
    result: EvaluationResult, numbered: bool | None = None
) -> tuple[list[str], list[list[str]]]:
    """Rows: ground-truth class; columns: predicted class (``background`` = nothing).
    With many classes (``numbered``, default past 5) columns are headed by the row
    numbers so the table stays narrow."""
    labels = result.confusion_labels
    if numbered is None:
        numbered = len(labels) > 5
    if numbered:
        header = ["truth \\ predicted", *(str(i + 1) for i in range(len(labels)))]
        names = [f"{i + 1} {label}" for i, label in enumerate(labels)]
    else:
        header, names = ["truth \\ predicted", *labels], list(labels)
    rows = [[name, *map(str, counts)] for name, counts in zip(names, result.confusion_matrix)]
    return header, rows


def compare_rows(
    base: EvaluationResult, other: EvaluationResult
) -> tuple[list[str], list[list[str]]]:
    """Both versions side by side, one row per class and measure (then the headline
    ``all`` rows), with ``delta = other - base``. Long rather than wide, so that
    long class names still fit a terminal."""
    header = ["class", "measure", str(base.model or "base"), str(other.model or "other"), "delta"]
    classes = list(dict.fromkeys([*base.per_class, *other.per_class]))
    rows = []
    for c in classes:
        pa, pb = base.per_class.get(c, {}), other.per_class.get(c, {})
        for i, (key, title) in enumerate(MEASURES):
            x, y = pa.get(key), pb.get(key)
            rows.append([c if i == 0 else "", title, fmt(x), fmt(y), fmt_delta(x, y)])
    for i, (title, x, y) in enumerate(
        (
            ("mAP@0.5", base.mAP50, other.mAP50),
            ("mAP@[.5:.95]", base.mAP, other.mAP),
            ("mAR@100", base.mAR100, other.mAR100),
            ("accuracy", base.accuracy, other.accuracy),
        )
    ):
        rows.append([HEADLINE if i == 0 else "", title, fmt(x), fmt(y), fmt_delta(x, y)])
    return header, rows


def compare_metrics(base: EvaluationResult, other: EvaluationResult) -> dict[str, Any]:
    """The `--compare --json` shape: ``base`` and ``other`` metric dicts (each the
    `--json` shape) and ``delta`` (other - base; None where either is missing)."""

    def delta(x, y):
        return None if x is None or y is None else round(y - x, 6)

    per_class = {}
    for c in dict.fromkeys([*base.per_class, *other.per_class]):
        pa, pb = base.per_class.get(c, {}), other.per_class.get(c, {})
        per_class[c] = {k: delta(pa.get(k), pb.get(k)) for k, _ in MEASURES}
    return {
        "models": [base.model, other.model],
        "split": base.split,
        "base": base.metrics,
        "other": other.metrics,
        "delta": {
            "mAP50": delta(base.mAP50, other.mAP50),
            "mAP": delta(base.mAP, other.mAP),
            "mAR100": delta(base.mAR100, other.mAR100),
            "accuracy": delta(base.accuracy, other.accuracy),
            "per_class": per_class,
        },
    }


# ---- charts --------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _bars(ax, groups: list[str], series: list[tuple[str, list[float | None]]]) -> None:
    """Grouped bars: one group per class, one bar per series; missing values say n/a."""
    import numpy as np

    n = len(series)
    width = 0.8 / max(n, 1)
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series):
        pos = x - 0.4 + width * (i + 0.5)
        heights = [0.0 if v is None else v for v in values]
        bars = ax.bar(
            pos,
            heights,
            width,
            label=name,
            color=_COLOURS[i % len(_COLOURS)] if n <= len(_COLOURS) else None,
        )
        for bar, v in zip(bars, values):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                (v or 0) + 0.01,
                "n/a" if v is None else f"{v:.2f}",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90 if len(groups) * n > 24 else 0,
            )
    ax.set_xticks(x)
    ax.set_xticklabels(
        groups, rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center"
    )
    ax.set_ylim(0, 1.15)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper right", fontsize=8, ncol=n)


def _groups(result: EvaluationResult) -> list[str]:
    return [*result.per_class, HEADLINE]


def _values(result: EvaluationResult, key: str, groups: list[str]) -> list[float | None]:
    headline = {"AP50": result.mAP50, "AR100": result.mAR100, "accuracy": result.accuracy}
    return [
        headline[key] if g == HEADLINE else result.per_class.get(g, {}).get(key) for g in groups
    ]


def plot_metrics(result: EvaluationResult, path: Path | str) -> Path:
    """The study's figure: per class, grouped bars for AP@0.5, AR@100 and image accuracy
    (the last group, ``all``, holds mAP@0.5, mAR@100 and overall accuracy)."""
    groups = _groups(result)
    fig = _figure(max(6.0, 1.1 * len(groups) + 2), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    _bars(ax, groups, [(title, _values(result, key, groups)) for key, title in MEASURES])
    ax.set_title(f"{result.model} on {result.split} ({result.images} images)")
    return _save(fig, Path(path))


def plot_confusion(result: EvaluationResult, path: Path | str) -> Path:
    import numpy as np

    labels = result.confusion_labels
    cm = np.array(result.confusion_matrix, dtype=float).reshape(len(labels), len(labels))
    size = max(4.0, 0.7 * len(labels) + 2)
    fig = _figure(size + 1, size)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    top = cm.max() if cm.size else 0
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if top and cm[i, j] > top / 2 else "black",
            )
    ax.set_title(
        f"{result.model} on {result.split}: boxes at IoU >= "
        f"{result.config.iou_threshold}, score >= {result.config.score_threshold}"
    )
    return _save(fig, Path(path))


def plot_compare(base: EvaluationResult, other: EvaluationResult, path: Path | str) -> Path:
    """One panel per measure; in each, the two versions' bars side by side per class."""
    groups = list(dict.fromkeys([*base.per_class, *other.per_class])) + [HEADLINE]
    fig = _figure(max(7.0, 0.9 * len(groups) + 2), 9.5)
    for i, (key, title) in enumerate(MEASURES):
        ax = fig.add_subplot(len(MEASURES), 1, i + 1)
        _bars(
            ax,
            groups,
            [
                (str(base.model), _values(base, key, groups)),
                (str(other.model), _values(other, key, groups)),
            ],
        )
        ax.set_ylabel(title)
    fig.suptitle(f"{base.model} vs {other.model} on {base.split}")
    fig.tight_layout()
    return _save(fig, Path(path))


# ---- files ---------------------------------------------------------------------
def save_report(
    result: EvaluationResult, reports_dir: Path | str, stem: str | None = None
) -> dict[str, Path]:
    """Write ``eval_<version>_<split>.json`` (the whole result, rebuildable), its bar
    chart ``.png`` and ``_confusion.png``. Returns the paths by kind."""
    reports_dir = Path(reports_dir)
    stem = stem or report_stem(result.model, result.split)
    paths = {
        "json": reports_dir / f"{stem}.json",
        "chart": reports_dir / f"{stem}.png",
        "confusion": reports_dir / f"{stem}_confusion.png",
    }
    remove_leftover_temps(reports_dir)  # what a killed run's writes left
    atomic_write_json(paths["json"], {"metrics": result.metrics, "result": result.to_dict()})
    plot_metrics(result, paths["chart"])
    plot_confusion(result, paths["confusion"])
    return paths


def load_report(path: Path | str) -> EvaluationResult:
    import json

    return EvaluationResult.from_dict(json.loads(Path(path).read_text())["result"])


def save_comparison(
    base: EvaluationResult, other: EvaluationResult, reports_dir: Path | str
) -> dict[str, Path]:
    reports_dir = Path(reports_dir)
    stem = report_stem(f"{base.model}_vs_{other.model}", base.split).replace("eval_", "compare_", 1)
    paths = {"json": reports_dir / f"{stem}.json", "chart": reports_dir / f"{stem}.png"}
    remove_leftover_temps(reports_dir)
    atomic_write_json(paths["json"], compare_metrics(base, other))
    plot_compare(base, other, paths["chart"])
    return paths
