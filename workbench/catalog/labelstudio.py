"""Tables ``ls_tasks``, ``ls_annotations``, ``ls_annotation_economics`` and
``ls_adjudication_tasks`` (see schema.py): what was pushed to Label Studio and what came
back (and, per annotation, what it kept of the pre-drawn boxes and how long it took).
``ls_adjudication_tasks`` holds `wb dedup adjudicate`'s tasks, one per duplicate group
(a group spans several images, so ``ls_tasks``, keyed by image, does not fit).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields

from .core import now_iso
from .records import AdjudicationTask, AnnotationEconomics, Box, LsAnnotation


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
            "SELECT task_id, prediction_version FROM ls_tasks WHERE project_id = ? AND kind = ?",
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

    def forget_ls_annotations(self, project_id: int, task_ids: Iterable[int]) -> None:
        """Drop the annotations recorded of tasks deleted on purpose (repeats of an image
        removed by `wb push`), so that the next pull does not read their absence as
        annotations deleted by a person."""
        with self.atomic() as db:
            db.executemany(
                "DELETE FROM ls_annotations WHERE project_id = ? AND task_id = ?",
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
            "SELECT * FROM ls_annotations WHERE project_id = ? ORDER BY task_id, annotation_id",
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
                    lead_time=r["lead_time"],
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
                "annotator, updated_at, was_cancelled, n_boxes, chosen, result_json, lead_time) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
                        a.lead_time,
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

    # ---- annotation economics ---------------------------------------------------
    _ECONOMICS_COLUMNS = tuple(f.name for f in fields(AnnotationEconomics))

    def annotation_economics(self, project_id: int | None = None) -> list[AnnotationEconomics]:
        """The recorded economics of pulled annotations (one project's, or all), in
        annotation order."""
        where, args = (
            ("WHERE e.project_id = ?", (project_id,)) if project_id is not None else ("", ())
        )
        rows = self.db.execute(
            # the seconds live once, with the annotation (ls_annotations.lead_time)
            f"SELECT e.*, a.lead_time FROM ls_annotation_economics e "
            f"LEFT JOIN ls_annotations a ON a.annotation_id = e.annotation_id "
            f"{where} ORDER BY e.annotation_id",
            args,
        )
        return [AnnotationEconomics(**{c: r[c] for c in self._ECONOMICS_COLUMNS}) for r in rows]

    def replace_task_economics(
        self, project_id: int, task_id: int, rows: Iterable[AnnotationEconomics]
    ) -> None:
        """A task's annotation economics become ``rows`` (those of annotations no longer
        there go), in one transaction."""
        rows = list(rows)
        cols = tuple(c for c in self._ECONOMICS_COLUMNS if c != "lead_time")  # see above
        with self.atomic() as db:
            db.execute(
                "DELETE FROM ls_annotation_economics WHERE project_id = ? AND task_id = ?",
                (project_id, task_id),
            )
            db.executemany(
                f"INSERT OR REPLACE INTO ls_annotation_economics ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})",
                [tuple(getattr(r, c) for c in cols) for r in rows],
            )

    # ---- adjudication tasks (Label Studio) ----------------------------------
    def adjudication_tasks(self, project_id: int) -> dict[int, AdjudicationTask]:
        """group id -> its task in the adjudication project."""
        rows = self.db.execute(
            "SELECT * FROM ls_adjudication_tasks WHERE project_id = ?", (project_id,)
        )
        return {r["group_id"]: AdjudicationTask(**dict(r)) for r in rows}

    def record_adjudication_tasks(
        self, project_id: int, rows: Iterable[tuple[int, str, int]]
    ) -> None:
        """Record pushed adjudication tasks ``(group_id, group_key, task_id)`` in one
        transaction."""
        ts = now_iso()
        with self.atomic() as db:
            db.executemany(
                "INSERT INTO ls_adjudication_tasks "
                "(project_id, group_id, group_key, task_id, pushed_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT(project_id, group_id) DO UPDATE SET "
                "group_key = excluded.group_key, task_id = excluded.task_id, "
                "pushed_at = excluded.pushed_at, applied_annotation_id = NULL, "
                "applied_updated_at = NULL",
                [(project_id, g, k, t, ts) for g, k, t in rows],
            )

    def forget_adjudication_tasks(
        self, project_id: int, group_ids: Iterable[int] | None = None
    ) -> None:
        """Drop the records of an adjudication project (all, or those of some groups)."""
        with self.atomic() as db:
            if group_ids is None:
                db.execute("DELETE FROM ls_adjudication_tasks WHERE project_id = ?", (project_id,))
            else:
                db.executemany(
                    "DELETE FROM ls_adjudication_tasks WHERE project_id = ? AND group_id = ?",
                    [(project_id, g) for g in group_ids],
                )

    def set_adjudication_applied(
        self, project_id: int, group_id: int, annotation_id: int, updated_at: str | None
    ) -> None:
        """Remember which answer settled a group (a changed answer is applied again)."""
        with self.atomic() as db:
            db.execute(
                "UPDATE ls_adjudication_tasks SET applied_annotation_id = ?, "
                "applied_updated_at = ? WHERE project_id = ? AND group_id = ?",
                (annotation_id, updated_at, project_id, group_id),
            )
