"""Catalog tables for this area (see schema.py): ls_tasks, ls_annotations.

Also small read-only queries over ``models``, ``predictions`` and ``priorities``
that `wb push` needs (prefixed ``ls_`` so they never shadow the owners' methods).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

from .core import now_iso
from .records import Box


@dataclass
class LsAnnotation:
    """One Label Studio annotation as seen at a pull."""

    annotation_id: int
    task_id: int
    image_id: int | None
    annotator: str | None
    updated_at: str | None
    was_cancelled: bool
    n_boxes: int
    chosen: bool
    result: list


class LabelStudioMixin:
    # ---- tasks --------------------------------------------------------------------
    def ls_task_map(self, project_id: int, kind: str = "label") -> dict[int, int]:
        """image id -> task id of the images pushed to a project."""
        rows = self.db.execute(
            "SELECT image_id, task_id FROM ls_tasks WHERE project_id = ? AND kind = ?",
            (project_id, kind),
        )
        return {r["image_id"]: r["task_id"] for r in rows}

    def ls_prediction_versions(self, project_id: int, kind: str = "label") -> dict[int, str | None]:
        """task id -> model version of the prediction sent with it."""
        rows = self.db.execute(
            "SELECT task_id, prediction_version FROM ls_tasks " "WHERE project_id = ? AND kind = ?",
            (project_id, kind),
        )
        return {r["task_id"]: r["prediction_version"] for r in rows}

    def record_ls_tasks(
        self, project_id: int, rows: Iterable[tuple[int, int, str | None]], kind: str = "label"
    ) -> None:
        """Record pushed tasks ``(image_id, task_id, prediction_version)`` in one transaction."""
        ts = now_iso()
        with self.atomic() as db:
            db.executemany(
                "INSERT INTO ls_tasks (image_id, project_id, task_id, kind, prediction_version, "
                "pushed_at) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT(project_id, image_id, kind) DO UPDATE SET "
                "task_id = excluded.task_id, prediction_version = excluded.prediction_version, "
                "pushed_at = excluded.pushed_at",
                [(i, project_id, t, kind, v, ts) for i, t, v in rows],
            )

    def set_ls_prediction_version(
        self, project_id: int, task_ids: Iterable[int], version: str
    ) -> None:
        with self.atomic() as db:
            db.executemany(
                "UPDATE ls_tasks SET prediction_version = ? WHERE project_id = ? AND task_id = ?",
                [(version, project_id, t) for t in task_ids],
            )

    def forget_ls_tasks(self, project_id: int, task_ids: Iterable[int]) -> None:
        """Drop records of tasks that no longer exist in Label Studio."""
        with self.atomic() as db:
            db.executemany(
                "DELETE FROM ls_tasks WHERE project_id = ? AND task_id = ?",
                [(project_id, t) for t in task_ids],
            )

    def forget_ls_project(self, project_id: int) -> None:
        with self.atomic() as db:
            db.execute("DELETE FROM ls_tasks WHERE project_id = ?", (project_id,))
            db.execute("DELETE FROM ls_annotations WHERE project_id = ?", (project_id,))

    def ls_task_count(self, project_id: int, kind: str = "label") -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM ls_tasks WHERE project_id = ? AND kind = ?", (project_id, kind)
        ).fetchone()
        return row[0]

    # ---- annotations ------------------------------------------------------------------
    def ls_annotations(self, project_id: int) -> dict[int, list[LsAnnotation]]:
        """task id -> annotations recorded at the last pull."""
        out: dict[int, list[LsAnnotation]] = {}
        rows = self.db.execute(
            "SELECT * FROM ls_annotations WHERE project_id = ? " "ORDER BY task_id, annotation_id",
            (project_id,),
        )
        for r in rows:
            out.setdefault(r["task_id"], []).append(
                LsAnnotation(
                    annotation_id=r["annotation_id"],
                    task_id=r["task_id"],
                    image_id=r["image_id"],
                    annotator=r["annotator"],
                    updated_at=r["updated_at"],
                    was_cancelled=bool(r["was_cancelled"]),
                    n_boxes=r["n_boxes"],
                    chosen=bool(r["chosen"]),
                    result=json.loads(r["result_json"]) if r["result_json"] else [],
                )
            )
        return out

    def apply_ls_task(
        self,
        project_id: int,
        task_id: int,
        image_id: int | None,
        annotations: list[LsAnnotation],
        boxes: list[Box] | None,
        update_truth: bool = True,
    ) -> None:
        """Record a task's annotations and, in the same transaction, its ground truth.

        ``boxes`` are the chosen annotation's boxes (``[]``: a negative). ``None`` means
        no submitted annotation remains: the image's Label Studio boxes go, and it stays
        annotated only if other boxes remain. ``update_truth=False`` records the
        annotations only (e.g. a task that was only skipped).
        """
        with self.atomic() as db:
            db.execute(
                "DELETE FROM ls_annotations WHERE project_id = ? AND task_id = ?",
                (project_id, task_id),
            )
            db.executemany(
                "INSERT OR REPLACE INTO ls_annotations (annotation_id, project_id, task_id, "
                "image_id, "
                "annotator, updated_at, was_cancelled, n_boxes, chosen, result_json) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        a.annotation_id,
                        project_id,
                        task_id,
                        image_id,
                        a.annotator,
                        a.updated_at,
                        int(a.was_cancelled),
                        a.n_boxes,
                        int(a.chosen),
                        json.dumps(a.result),
                    )
                    for a in annotations
                ],
            )
            if image_id is None or not update_truth:
                return
            if boxes is not None:
                # A submitted Label Studio annotation is the latest human word on the
                # image: it replaces every earlier box, imported ones included.
                self.replace_boxes(image_id, boxes, source=None, annotated=True)
            else:
                others = db.execute(
                    "SELECT COUNT(*) FROM boxes WHERE image_id = ? AND source != ?",
                    (image_id, "labelstudio"),
                ).fetchone()[0]
                self.replace_boxes(image_id, [], source="labelstudio", annotated=others > 0)

    # ---- read-only views of other areas' tables ------------------------------------------
    def ls_promoted_model(self) -> dict | None:
        """The promoted model version: {"version", "level", "classes"} or None."""
        row = self.db.execute(
            "SELECT version, level, classes_json FROM models WHERE promoted = 1 "
            "ORDER BY promoted_at DESC, created_at DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {
            "version": row["version"],
            "level": row["level"],
            "classes": json.loads(row["classes_json"]) if row["classes_json"] else None,
        }

    def ls_predictions(self, model_version: str, image_ids: Iterable[int]) -> dict[int, list[dict]]:
        """image id -> that model's boxes (pixel dicts) for the given images."""
        ids = list(image_ids)
        out: dict[int, list[dict]] = {}
        for chunk in _chunks(ids, 500):
            rows = self.db.execute(
                f"SELECT image_id, boxes_json FROM predictions WHERE model_version = ? "
                f"AND image_id IN ({','.join('?' * len(chunk))})",
                (model_version, *chunk),
            )
            for r in rows:
                out[r["image_id"]] = json.loads(r["boxes_json"])
        return out

    def ls_uncertainties(self, model_version: str, image_ids: Iterable[int]) -> dict[int, float]:
        ids = list(image_ids)
        out: dict[int, float] = {}
        for chunk in _chunks(ids, 500):
            rows = self.db.execute(
                f"SELECT image_id, uncertainty FROM priorities WHERE model_version = ? "
                f"AND image_id IN ({','.join('?' * len(chunk))})",
                (model_version, *chunk),
            )
            out.update({r["image_id"]: r["uncertainty"] for r in rows})
        return out


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]
