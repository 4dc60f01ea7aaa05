"""`wb demo`'s summary tables fit an 80-column terminal with every header whole (issue 15,
item 8b: "promot…", "accur…" were cut)."""

from __future__ import annotations

import re

from workbench.cli.demo import _print_summary


def _summary() -> dict:
    metrics = {"mAP50": 0.4537, "mAP": 0.2311, "mAR100": 0.5123}
    rounds = [
        {
            "round": n,
            "version": f"v00{n}",
            "promoted": "v002",
            "annotated": 150 + 50 * (n - 1),
            "epochs": 12,
            "metrics": metrics,
            "corrections": {
                "boxes": 1234,
                "from_predrawn": 1000,
                "from_predrawn_share": 0.81,
                "kept": 800,
                "moved": 200,
                "added": 234,
                "deleted": 56,
            },
        }
        for n in (1, 2)
    ]
    return {
        "workspace": "/tmp/demo",
        "data": {
            "images": 420,
            "path": "/tmp/demo/data",
            "planted_exact": 9,
            "planted_near": 21,
            "planted_conflicts": 6,
        },
        "dedup": {"duplicate_groups": 27, "conflict_groups": 6, "report": "/tmp/r.html"},
        "labelstudio": {"project_id": 1, "tasks": 400, "url": "http://127.0.0.1:8080"},
        "rounds": rounds,
        "comparison": {r["version"]: {"mAP50": 0.4012, "accuracy": 0.8734} for r in rounds},
        "reports": {"models": "/tmp/m.html", "evaluation": "/tmp/e.html"},
        "seconds": 600.0,
    }


def test_summary_tables_fit_80_columns_with_whole_headers(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    _print_summary(_summary())
    out = capsys.readouterr().out
    assert "…" not in out, out
    tables = out[out.index("models:") : out.index("review") if "review" in out else None]
    assert max(len(line) for line in tables.splitlines()) <= 80
    words = set(re.findall(r"[\w-]+", out))
    for header in ("promoted", "accuracy", "mAP50", "mAR100", "labels", "epochs", "pre-drawn"):
        assert header in words, f"header {header!r} not shown whole:\n{out}"
    assert "0.454" in out or "0.4537" in out  # the rows are there too


def test_the_check_can_fail_on_a_narrower_terminal(monkeypatch, capsys):
    # the same rendering on a terminal too narrow for it cuts headers: the check above
    # would see it
    monkeypatch.setenv("COLUMNS", "60")
    _print_summary(_summary())
    assert "…" in capsys.readouterr().out
