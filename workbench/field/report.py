"""`wb field report`: how often the field app's answer was right, the study's two tables.

Per photo, the latest verdict any device sent counts. The photo's class is the one the
verdict names: the model's answer when it was ``correct``, the device's ``label`` when
``wrong`` (``unknown`` when a wrong verdict named none). Table 1, per class: correct /
total / accuracy, and overall. Table 2, for the wrong answers: how often each class was
(wrongly) given as the answer. The period selects photos by upload time.
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..fsutil import atomic_write_bytes

UNKNOWN_CLASS = "unknown"  # a wrong verdict that named no class


def parse_moment(value: str | None, end: bool = False) -> str | None:
    """``YYYY-MM-DD`` or an ISO time -> the ISO UTC time the catalog compares with. A
    bare date as ``end`` means the end of that day (``--until 2026-12-01`` includes it)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if end:
                moment += timedelta(days=1)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise WorkbenchError(
            f"'{value}' is not a date: give YYYY-MM-DD or an ISO time (2026-12-01T08:00)"
        ) from None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _rate(correct: int, total: int) -> float | None:
    return round(correct / total, 4) if total else None


def field_report(catalog, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """The report as the ``--json`` output: ``photos``, ``with_feedback``, ``overall``
    (``correct``, ``total``, ``accuracy``), ``per_class`` (class -> the same three) and
    ``wrong_as`` (class given as the answer -> how often it was wrong)."""
    photos = catalog.field_photos(parse_moment(since), parse_moment(until, end=True))
    verdicts = catalog.latest_field_verdicts([p.id for p in photos])
    correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    wrong_as: Counter[str] = Counter()
    for photo in photos:
        verdict = verdicts.get(photo.id)
        if verdict is None:
            continue
        if verdict.verdict == "correct":
            truth = photo.answer
            correct[truth] += 1
        else:
            truth = verdict.label or UNKNOWN_CLASS
            wrong_as[photo.answer] += 1
        total[truth] += 1
    n_correct, n_total = sum(correct.values()), sum(total.values())
    return {
        "photos": len(photos),
        "with_feedback": n_total,
        "since": since,
        "until": until,
        "overall": {"correct": n_correct, "total": n_total, "accuracy": _rate(n_correct, n_total)},
        "per_class": {
            c: {"correct": correct[c], "total": total[c], "accuracy": _rate(correct[c], total[c])}
            for c in sorted(total)
        },
        "wrong_as": dict(sorted(wrong_as.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def accuracy_rows(report: dict) -> list[list[str]]:
    """Table 1 as text rows: class, correct, total, accuracy; the last row is overall."""
    rows = [
        [c, str(v["correct"]), str(v["total"]), _percent(v["accuracy"])]
        for c, v in report["per_class"].items()
    ]
    o = report["overall"]
    rows.append(["overall", str(o["correct"]), str(o["total"]), _percent(o["accuracy"])])
    return rows


def wrong_rows(report: dict) -> list[list[str]]:
    """Table 2 as text rows: class given as the (wrong) answer, count, share of wrong."""
    wrong = sum(report["wrong_as"].values())
    return [
        [c, str(n), _percent(n / wrong if wrong else None)] for c, n in report["wrong_as"].items()
    ]


def _percent(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def plot_report(report: dict, path: Path | str) -> Path:
    """Two bar charts side by side: accuracy per class (and overall), wrong answers by
    the class given. Object API on an Agg canvas, written whole or not at all."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes = list(report["per_class"])
    fig = Figure(figsize=(max(8.0, 1.2 * (len(classes) + len(report["wrong_as"])) + 3), 4.5))
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    groups = [*classes, "overall"]
    values = [report["per_class"][c]["accuracy"] for c in classes]
    values.append(report["overall"]["accuracy"])
    totals = [report["per_class"][c]["total"] for c in classes] + [report["overall"]["total"]]
    bars = left.bar(range(len(groups)), [v or 0 for v in values], color="#4c72b0")
    for bar, v, n in zip(bars, values, totals):
        left.text(
            bar.get_x() + bar.get_width() / 2,
            (v or 0) + 0.02,
            "n/a" if v is None else f"{100 * v:.0f}% of {n}",
            ha="center",
            fontsize=8,
        )
    left.set_xticks(range(len(groups)))
    left.set_xticklabels(groups, rotation=30 if len(groups) > 4 else 0)
    left.set_ylim(0, 1.15)
    left.set_title(f"accuracy per class ({report['with_feedback']} photos with a verdict)")
    wrong = report["wrong_as"]
    right.bar(range(len(wrong)), list(wrong.values()), color="#dd8452")
    right.set_xticks(range(len(wrong)))
    right.set_xticklabels(list(wrong), rotation=30 if len(wrong) > 4 else 0)
    right.set_title("wrong answers: the class given")
    if not wrong:
        right.text(0.5, 0.5, "no wrong answers", ha="center", transform=right.transAxes)
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
