"""`wb report`: the economics of annotation, from what `wb pull` recorded per annotation.

Per round (the model version whose boxes were pre-drawn; "none" for tasks drawn from
scratch) and per annotator: tasks, box outcomes (kept, moved, relabelled, deleted, new),
seconds per task with and without pre-drawn boxes (Label Studio's ``lead_time``), and an
estimate of the hours the pre-drawn boxes saved against drawing every submitted box.

The estimate: for each timed annotation that started from pre-drawn boxes, drawing its
submitted boxes from scratch would have taken ``final boxes x seconds per box``; what it
took is its ``lead_time``; the difference, summed, is the time saved (negative when the
pre-drawn boxes cost time). Seconds per box is measured where the workspace holds timed
annotations drawn from scratch (their seconds over their boxes, overhead per task
included), else assumed (``DEFAULT_SECONDS_PER_BOX``), or given (``--seconds-per-box``);
the report says which.

Labels saved by the annotation order against random order come from
``benchmarks/al_simulation.py``'s ``results.json`` (labels each strategy needed to reach
the mAP@0.5 random order ends at) when the workspace holds one
(``reports/al-simulation/results.json``); else "n/a" with the command that makes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..catalog.records import AnnotationEconomics
from ..errors import WorkbenchError

# Assumed only where nothing was measured. Drawing one tight box from scratch: 7 s with
# extreme clicking, 25.5 s with the classic two-corner drag (Papadopoulos et al., "Extreme
# clicking for efficient object annotation", ICCV 2017, measured on PASCAL VOC); the
# lower figure, so that the saving is not overstated.
DEFAULT_SECONDS_PER_BOX = 7.0
AL_RESULTS = Path("al-simulation") / "results.json"  # under the workspace's reports/
REPORT_PNG = "economics.png"
OUTCOMES = ("kept", "moved", "relabelled", "deleted", "new")
NO_ROUND = "none"  # the round of annotations with no prediction to start from


class BadAlResults(WorkbenchError):
    pass


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def seconds_per_box(rows: Iterable[AnnotationEconomics], given: float | None = None) -> dict:
    """The seconds one box takes from scratch, and where the figure comes from:
    ``given`` (the option), ``measured`` (timed annotations without pre-drawn boxes), or
    ``assumed`` (``DEFAULT_SECONDS_PER_BOX``)."""
    scratch = [r for r in rows if r.predrawn == 0 and r.lead_time is not None and r.final_boxes > 0]
    boxes = sum(r.final_boxes for r in scratch)
    measured = sum(r.lead_time for r in scratch) / boxes if boxes else None
    if given is not None:
        value, source = given, "given"
    elif measured is not None:
        value, source = measured, "measured"
    else:
        value, source = DEFAULT_SECONDS_PER_BOX, "assumed"
    return {
        "value": value,
        "source": source,
        "measured": measured,
        "measured_from_annotations": len(scratch),
        "measured_from_boxes": boxes,
    }


def group_summary(name: str, rows: list[AnnotationEconomics], per_box: float) -> dict:
    """One row of the report: ``rows``' tasks, box outcomes, seconds per task with and
    without pre-drawn boxes, and the hours saved at ``per_box`` seconds per box."""
    with_boxes = [r for r in rows if r.predrawn > 0]
    timed_with = [r for r in with_boxes if r.lead_time is not None]
    timed_without = [r for r in rows if r.predrawn == 0 and r.lead_time is not None]
    saved = (
        sum(r.final_boxes * per_box - r.lead_time for r in timed_with) / 3600
        if timed_with
        else None
    )
    return {
        "name": name,
        "tasks": len({(r.project_id, r.task_id) for r in rows}),
        "annotations": len(rows),
        "with_predrawn": len(with_boxes),
        "predrawn": sum(r.predrawn for r in rows),
        "final_boxes": sum(r.final_boxes for r in rows),
        **{k: sum(getattr(r, k) for r in rows) for k in OUTCOMES},
        "timed": sum(1 for r in rows if r.lead_time is not None),
        "timed_with_predrawn": len(timed_with),
        "seconds_per_task_with_predrawn": _mean([r.lead_time for r in timed_with]),
        "seconds_per_task_without_predrawn": _mean([r.lead_time for r in timed_without]),
        "boxes_timed_with_predrawn": sum(r.final_boxes for r in timed_with),
        "hours_spent_with_predrawn": (
            sum(r.lead_time for r in timed_with) / 3600 if timed_with else None
        ),
        "hours_saved": saved,
    }


def _groups(rows: list[AnnotationEconomics], key, per_box: float) -> list[dict]:
    by: dict[str, list[AnnotationEconomics]] = {}
    for r in rows:  # rows come in annotation order: groups in order of first work
        by.setdefault(key(r), []).append(r)
    return [group_summary(name, members, per_box) for name, members in by.items()]


def labels_saved_by_order(path: Path) -> dict:
    """Labels each annotation order needed against random, from al_simulation's
    ``results.json`` at ``path`` ("available": False with the way to make it when
    absent)."""
    how = (
        "run benchmarks/al_simulation.py (docs/prioritize.md) with "
        f"--out <workspace>/reports/{AL_RESULTS.parent}, or give --al-results PATH"
    )
    if not path.is_file():
        return {"available": False, "source": str(path), "how": how, "strategies": []}
    try:
        data = json.loads(path.read_text())
        table = data["table"]
        base = table["random"]["labels_needed"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadAlResults(
            f"{path} is not an al_simulation results.json ({exc!r}): give the results.json "
            f"benchmarks/al_simulation.py wrote, or move this file away"
        ) from None
    strategies = []
    for name, t in table.items():
        if name == "random":
            continue
        need = t.get("labels_needed")
        strategies.append(
            {
                "strategy": name,
                "labels_needed": need,
                "random_labels_needed": base,
                "labels_saved": (base - need) if need is not None else None,
                "share_saved": (1 - need / base) if need is not None and base else None,
                "target_mAP50": t.get("target_mAP50"),
            }
        )
    return {
        "available": True,
        "source": str(path),
        "dataset": (data.get("setup") or {}).get("title")
        or (data.get("setup") or {}).get("dataset"),
        "strategies": strategies,
        "how": how,
    }


def economics_report(
    rows: list[AnnotationEconomics],
    *,
    seconds_per_box_given: float | None = None,
    al_results: Path | None = None,
) -> dict:
    """The report as one JSON-able dict: rounds, annotators, the total, the seconds per
    box it used and where from, and the labels saved by the annotation order."""
    if seconds_per_box_given is not None and seconds_per_box_given <= 0:
        raise ValueError("seconds per box must be > 0")
    per_box = seconds_per_box(rows, seconds_per_box_given)
    value = per_box["value"]
    return {
        "annotations": len(rows),
        "timed": sum(1 for r in rows if r.lead_time is not None),
        "seconds_per_box": per_box,
        "rounds": _groups(rows, lambda r: r.model_version or NO_ROUND, value),
        "annotators": _groups(rows, lambda r: r.annotator or "unknown", value),
        "pulls": _groups(rows, lambda r: r.pulled_at, value),
        "total": group_summary("all", rows, value),
        "labels_saved_by_order": (
            labels_saved_by_order(al_results) if al_results is not None else None
        ),
    }


def hours_saved_line(group: dict, per_box: dict) -> str:
    """One sentence on a group's hours saved, saying what is measured and what assumed."""
    if group["hours_saved"] is None:
        why = "no pre-drawn boxes" if not group["with_predrawn"] else "no lead_time recorded"
        return f"hours saved by pre-drawn boxes: n/a ({why})"
    source = {
        "measured": f"measured on the {per_box['measured_from_annotations']} timed annotations "
        "drawn without pre-drawn boxes",
        "assumed": "assumed, nothing measured: --seconds-per-box",
        "given": "given with --seconds-per-box",
    }[per_box["source"]]
    saved = group["hours_saved"]
    spent = group["hours_spent_with_predrawn"] * 3600
    return (
        f"hours saved by pre-drawn boxes: {saved:.3f} h ({saved * 3600:.0f} s): drawing "
        f"their {group['boxes_timed_with_predrawn']} boxes from scratch at "
        f"{per_box['value']:.1f} s per box ({source}), against the {spent:.0f} s the "
        f"{group['timed_with_predrawn']} timed annotations that started from them took"
    )


def plot_report(report: dict, path: Path) -> Path:
    """Box outcomes per round, and seconds per task with and without pre-drawn boxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = report["rounds"]
    names = [g["name"] for g in rounds]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    bottom = [0] * len(rounds)
    for k in OUTCOMES:
        vals = [g[k] for g in rounds]
        ax1.bar(names, vals, bottom=bottom, label=k)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_title("boxes per round (model whose boxes were pre-drawn)", fontsize=9)
    ax1.set_ylabel("boxes")
    ax1.legend(fontsize=8)
    x = range(len(rounds))
    for offset, key, label in (
        (-0.2, "seconds_per_task_with_predrawn", "with pre-drawn boxes"),
        (0.2, "seconds_per_task_without_predrawn", "without"),
    ):
        ax2.bar([i + offset for i in x], [g[key] or 0 for g in rounds], width=0.4, label=label)
    ax2.set_xticks(list(x), names)
    ax2.set_title("seconds per task (Label Studio lead_time; 0: n/a)", fontsize=9)
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelsize=8, rotation=20)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
