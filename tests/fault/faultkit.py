"""What every fault test needs: run the real `wb` as a child process (killed at a named
point through WB_FAULT_AT), and read back what a user would check: the catalog's own
integrity, its rows keyed by path (so two workspaces compare), Label Studio's tasks and
the model registry's folders."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from workbench.faults import ENV as FAULT_ENV
from workbench.labelstudio.tasks import IMAGE_ID_FIELD

REPO = Path(__file__).resolve().parents[2]
WB_TIMEOUT_S = 300


def wb(ws_root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    """`wb --workspace WS ARGS...` from this checkout; ``fault``: WB_FAULT_AT's value."""
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-m", "workbench", "--workspace", str(ws_root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=WB_TIMEOUT_S,
    )


def wb_ok(ws_root: Path, *args: str) -> subprocess.CompletedProcess:
    res = wb(ws_root, *args)
    assert res.returncode == 0, (
        f"wb {' '.join(args)}: rc {res.returncode}\n{res.stdout}{res.stderr}"
    )
    return res


def wb_json(ws_root: Path, *args: str) -> dict:
    return json.loads(wb_ok(ws_root, *args, "--json").stdout)


def wb_killed(ws_root: Path, *args: str, fault: str) -> subprocess.CompletedProcess:
    """Run and insist it died by SIGKILL at ``fault`` (a test whose point is never
    reached would otherwise pass without testing anything)."""
    res = wb(ws_root, *args, fault=fault)
    assert res.returncode == -signal.SIGKILL, (
        f"wb {' '.join(args)} was not killed at {fault} (rc {res.returncode}): "
        f"the point was not reached\n{res.stdout}{res.stderr}"
    )
    return res


def _db(ws_root: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(ws_root) / 'catalog.sqlite'}?mode=ro", uri=True)


def catalog_state(ws_root: Path) -> dict[str, list]:
    """The catalog as comparable rows keyed by image path (ids differ between two
    workspaces), after SQLite's integrity and foreign-key checks; fails on duplicates."""
    db = _db(ws_root)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        doubled_boxes = db.execute(
            "SELECT image_id, label, x1, y1, x2, y2, source, annotation_id, COUNT(*) "
            "FROM boxes GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 HAVING COUNT(*) > 1"
        ).fetchall()
        assert doubled_boxes == [], f"boxes stored twice: {doubled_boxes[:5]}"
        tasks, distinct = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT task_id) FROM ls_tasks"
        ).fetchone()
        assert tasks == distinct, f"{tasks} ls_tasks rows for {distinct} task ids"
        rows = {
            "images": "SELECT path, sha256, width, height, label, status, annotated FROM images",
            "boxes": "SELECT i.path, b.label, round(b.x1, 2), round(b.y1, 2), round(b.x2, 2), "
            "round(b.y2, 2), b.source, b.annotator, b.annotation_id "
            "FROM boxes b JOIN images i ON i.id = b.image_id",
            "ls_tasks": "SELECT i.path, t.kind FROM ls_tasks t JOIN images i ON i.id = t.image_id",
            "ls_annotations": "SELECT annotation_id, annotator, was_cancelled, n_boxes, chosen "
            "FROM ls_annotations",
            "dup_groups": "SELECT group_key, kind, resolution FROM dup_groups",
            "dup_members": "SELECT g.group_key, i.path, m.keep FROM dup_members m "
            "JOIN dup_groups g ON g.id = m.group_id JOIN images i ON i.id = m.image_id",
            "image_hashes": "SELECT i.path, h.method, h.hash FROM image_hashes h "
            "JOIN images i ON i.id = h.image_id",
            "models": "SELECT version, level, classes_json FROM models",
        }
        return {name: sorted(db.execute(sql).fetchall(), key=repr) for name, sql in rows.items()}
    finally:
        db.close()


def assert_same_state(got: dict[str, list], want: dict[str, list]) -> None:
    """Table by table, so a failure says which table and which rows differ."""
    for table in want:
        extra = Counter(got[table]) - Counter(want[table])
        missing = Counter(want[table]) - Counter(got[table])
        assert not extra and not missing, (
            f"{table}: {sum(extra.values())} rows more than the clean run "
            f"(e.g. {list(extra)[:3]}), {sum(missing.values())} fewer (e.g. {list(missing)[:3]})"
        )


def recorded_tasks(ws_root: Path) -> dict[int, tuple[int, int]]:
    """task id -> (project id, image id) as the catalog records them."""
    db = _db(ws_root)
    try:
        rows = db.execute("SELECT task_id, project_id, image_id FROM ls_tasks").fetchall()
    finally:
        db.close()
    return {t: (p, i) for t, p, i in rows}


def image_paths(ws_root: Path) -> dict[int, str]:
    """image id -> path, to compare two workspaces whose ids may differ."""
    db = _db(ws_root)
    try:
        return dict(db.execute("SELECT id, path FROM images"))
    finally:
        db.close()


def label_studio_tasks(client, project_id: int) -> list[dict]:
    """Every task of a project, straight from Label Studio: id, image id, annotations."""
    return [
        {
            "id": t.id,
            "image_id": (t.data or {}).get(IMAGE_ID_FIELD),
            "annotations": len(t.annotations or []),
        }
        for t in client.tasks.list(project=project_id, fields="all")
    ]


def assert_one_task_per_image(client, ws_root: Path) -> list[dict]:
    """Label Studio holds exactly one task per pushed image, and they are the tasks the
    catalog records (none unrecorded, none recorded that Label Studio lacks)."""
    recorded = recorded_tasks(ws_root)
    [project_id] = {p for p, _ in recorded.values()}
    tasks = label_studio_tasks(client, project_id)
    per_image = Counter(t["image_id"] for t in tasks)
    doubled = {i: n for i, n in per_image.items() if n > 1}
    assert not doubled, f"Label Studio has several tasks for images {sorted(doubled)[:10]}"
    assert {t["id"]: (project_id, t["image_id"]) for t in tasks} == recorded
    return tasks


def registry_state(ws_root: Path) -> dict:
    """Version folders against the catalog's models: the same set, nothing half-written."""
    models_dir = Path(ws_root) / "models"
    folders = sorted(
        p.name for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    db = _db(ws_root)
    try:
        listed = sorted(v for (v,) in db.execute("SELECT version FROM models"))
    finally:
        db.close()
    return {
        "folders": folders,
        "listed": listed,
        "incoming": sorted(p.name for p in models_dir.glob(".incoming-*")),
        "weights": sorted(v for v in folders if (models_dir / v / "weights.pt").is_file()),
    }


def assert_registry_consistent(ws_root: Path) -> dict:
    state = registry_state(ws_root)
    assert state["folders"] == state["listed"], (
        f"version folders {state['folders']} but the catalog lists {state['listed']}"
    )
    assert state["incoming"] == [], f"left over: {state['incoming']}"
    assert state["weights"] == state["folders"], "a registered version lacks its weights"
    return state
