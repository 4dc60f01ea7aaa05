"""The studies' table and figure: one row per registered model of a grid's cells, its
scores on every test set side by side; a grouped bar chart (one group per run, one bar
per test set) like the papers' figures. Both are written into the study's folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_bytes, atomic_write_text
from .grid import Grid, show_value

#: per task: the metrics the table shows per test set; the first is the chart's
METRICS = {"classify": ("accuracy", "f_score"), "detect": ("mAP50", "mAR100")}
TABLE_CSV = "table.csv"
TABLE_MD = "table.md"
CHART_PNG = "chart.png"


def study_rows(grid: Grid, state: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per version of each of the grid's cells, in the grid's order; a cell not
    run yet is one row with status ``pending`` and no scores."""
    rows = []
    for cell in grid.cells():
        record = state.get("cells", {}).get(cell.key)
        base = {
            "cell": cell.label,
            "key": cell.key,
            "task": cell.task,
            "values": cell.values,
            **cell.values,
        }
        if not record or not record.get("versions"):
            rows.append({**base, "status": "pending", "version": None, "scores": {}})
            continue
        for entry in record["versions"]:
            rows.append(
                {
                    **base,
                    "status": record["status"],
                    "version": entry["version"],
                    "species": entry.get("species"),
                    "scores": {s["set"]: s for s in entry.get("scores", [])},
                }
            )
    return rows


def set_names(rows: list[dict]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names += [n for n in row["scores"] if n not in names]
    return names


def _metrics(rows: list[dict]) -> list[str]:
    out: list[str] = []
    for row in rows:
        out += [m for m in METRICS[row["task"]] if m not in out]
    return out


def _fmt(v) -> str:
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _run_name(row: dict) -> str:
    return row["cell"] + (f" [{row['species']}]" if row.get("species") else "")


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the table: run, version, then ``set metric`` columns."""
    sets, metrics = set_names(rows), _metrics(rows)
    header = ["run", "version"] + [f"{s} {m}" for s in sets for m in metrics]
    body = []
    for row in rows:
        cells = [_run_name(row), row["version"] or row["status"]]
        for s in sets:
            got = row["scores"].get(s, {})
            cells += [_fmt(got.get(m)) for m in metrics]
        body.append(cells)
    return header, body


def write_reports(folder: Path, rows: list[dict], title: str) -> dict[str, str]:
    """``table.csv``, ``table.md`` and (when any run has scores) ``chart.png``."""
    header, body = table(rows)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(body)
    atomic_write_text(folder / TABLE_CSV, buf.getvalue())
    md = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in body]
    atomic_write_text(folder / TABLE_MD, "\n".join(md) + "\n")
    out = {"csv": str(folder / TABLE_CSV), "md": str(folder / TABLE_MD)}
    if any(r["scores"] for r in rows):
        out["chart"] = str(grouped_bar_chart(rows, folder / CHART_PNG, title))
    return out


def _chart_label(row: dict, varying: list[str]) -> str:
    """The run as a tick label: only the axes whose value differs between runs, one a
    line (the shared ones go into the title)."""
    lines = [f"{k}={show_value(row['values'][k])}" for k in varying]
    if row.get("species"):
        lines.append(f"[{row['species']}]")
    return "\n".join(lines) or row["cell"]


def grouped_bar_chart(rows: list[dict], path: Path, title: str) -> Path:
    """One panel per metric; in each, a group of bars per run, one bar per test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in rows if r["scores"]]
    sets, metrics = set_names(scored), _metrics(scored)
    axes_names = list(scored[0]["values"])
    varying = [a for a in axes_names if len({repr(r["values"].get(a)) for r in scored}) > 1]
    shared = [f"{a}={show_value(scored[0]['values'][a])}" for a in axes_names if a not in varying]
    width = 0.8 / max(1, len(sets))
    fig, axes = plt.subplots(
        len(metrics),
        1,
        figsize=(max(6.0, 1.3 * len(scored) + 2.5), 1.2 + 2.8 * len(metrics)),
        squeeze=False,
    )
    for ax, metric in zip(axes[:, 0], metrics):
        for j, s in enumerate(sets):
            values = [(r["scores"].get(s) or {}).get(metric) for r in scored]
            xs = [i + (j - (len(sets) - 1) / 2) * width for i in range(len(scored))]
            bars = ax.bar(xs, [v or 0.0 for v in values], width, label=s)
            for bar, v in zip(bars, values):
                if v is not None:
                    ax.annotate(
                        f"{v:.2f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1.15)
        ax.set_xticks(range(len(scored)), [_chart_label(r, varying) for r in scored], fontsize=8)
        ax.legend(fontsize=8, title="test set", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0, 0].set_title(title + (f" ({', '.join(shared)})" if shared else ""), fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
