"""Tables ``models``, ``predictions`` and ``classifications`` (see schema.py): model
versions, a detector's stored detections and a classifier's class probabilities."""

from __future__ import annotations

import json
from collections.abc import Iterable

from .core import chunks, now_iso
from .records import Classification, ModelRecord


def _model(row) -> ModelRecord:
    return ModelRecord(
        version=row["version"],
        parent=row["parent"],
        created_at=row["created_at"],
        promoted=bool(row["promoted"]),
        promoted_at=row["promoted_at"],
        level=row["level"],
        classes=json.loads(row["classes_json"] or "[]"),
        metrics=json.loads(row["metrics_json"] or "{}"),
        config=json.loads(row["config_json"] or "{}"),
        task=row["task"],
    )


#: the tasks a model version can be for; "detect" is what every older caller means
TASKS = ("detect", "classify")


class ModelsMixin:
    # ---- model versions -------------------------------------------------------

    def _version_rows(self, sql: str, version: str, image_ids=None) -> list:
        """The rows of ``sql`` (a query on one model version, ``?`` its version) by image
        id; with ``image_ids``, only those images' rows, asked for in chunks."""
        if image_ids is None:
            return self.db.execute(sql + " ORDER BY image_id", (version,)).fetchall()
        rows = []
        for chunk in chunks(sorted(set(image_ids))):
            marks = ",".join("?" * len(chunk))
            rows += self.db.execute(
                f"{sql} AND image_id IN ({marks}) ORDER BY image_id", (version, *chunk)
            ).fetchall()
        return rows

    def add_model(
        self,
        version: str,
        parent: str | None,
        level: str | None,
        classes: list[str],
        metrics: dict,
        config: dict,
        task: str = "detect",
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown model task {task!r}; known: {', '.join(TASKS)}")
        with self.atomic() as db:
            db.execute(
                "INSERT INTO models (version, parent, created_at, promoted, level, classes_json, "
                "metrics_json, config_json, task) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?)",
                (
                    version,
                    parent,
                    now_iso(),
                    level,
                    json.dumps(classes),
                    json.dumps(metrics, default=str),
                    json.dumps(config, default=str),
                    task,
                ),
            )

    def model(self, version: str) -> ModelRecord | None:
        row = self.db.execute("SELECT * FROM models WHERE version = ?", (version,)).fetchone()
        return _model(row) if row else None

    def models(self) -> list[ModelRecord]:
        """Every registered version, oldest first."""
        rows = self.db.execute("SELECT * FROM models ORDER BY created_at, version")
        return [_model(r) for r in rows]

    def set_model_metrics(self, version: str, metrics: dict) -> None:
        with self.atomic() as db:
            db.execute(
                "UPDATE models SET metrics_json = ? WHERE version = ?",
                (json.dumps(metrics, default=str), version),
            )

    def promote_model(self, version: str) -> None:
        """Make ``version`` the one promoted model of its task (a classifier's promotion
        leaves the promoted detector as it is, and the other way round)."""
        with self.atomic() as db:
            db.execute(
                "UPDATE models SET promoted = 0, promoted_at = NULL WHERE promoted = 1 "
                "AND task = (SELECT task FROM models WHERE version = ?)",
                (version,),
            )
            db.execute(
                "UPDATE models SET promoted = 1, promoted_at = ? WHERE version = ?",
                (now_iso(), version),
            )

    def promoted_model(self, task: str = "detect") -> ModelRecord | None:
        """The promoted version of ``task`` (default: the serving detector), or None. The
        one answer to "which model is promoted": should two rows of a task ever be
        marked, the latest promotion wins. A classifier is never the promoted detector."""
        row = self.db.execute(
            "SELECT * FROM models WHERE promoted = 1 AND task = ? "
            "ORDER BY promoted_at DESC, created_at DESC LIMIT 1",
            (task,),
        ).fetchone()
        return _model(row) if row else None

    # ---- predictions ----------------------------------------------------------
    def store_predictions(self, version: str, rows: dict[int, list[dict]]) -> None:
        """Replace the model's detections for these images (image id -> detection dicts)."""
        ts = now_iso()
        with self.atomic() as db:
            db.executemany(
                "INSERT INTO predictions (image_id, model_version, boxes_json, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(image_id, model_version) DO UPDATE SET "
                "boxes_json = excluded.boxes_json, created_at = excluded.created_at",
                [(image_id, version, json.dumps(dets), ts) for image_id, dets in rows.items()],
            )

    def predictions(
        self, version: str, image_ids: Iterable[int] | None = None
    ) -> dict[int, list[dict]]:
        """image id -> the model's detections (``{"label","x1",...,"score","probs"}``),
        by image id; with ``image_ids``, only those images that have some."""
        rows = self._version_rows(
            "SELECT image_id, boxes_json FROM predictions WHERE model_version = ?",
            version,
            image_ids,
        )
        return {r["image_id"]: json.loads(r["boxes_json"]) for r in rows}

    # ---- classifications (a classifier's answer per image) -------------------------
    def store_classifications(self, version: str, rows: dict[int, dict[str, float]]) -> None:
        """Replace the classifier's answer for these images (image id -> {class: p});
        the most probable class and its p are kept beside the full vector."""
        ts = now_iso()
        values = []
        for image_id, probs in rows.items():
            if not probs:
                raise ValueError(f"image {image_id}: empty class probabilities")
            label = max(probs, key=lambda c: probs[c])
            values.append((image_id, version, label, float(probs[label]), json.dumps(probs), ts))
        with self.atomic() as db:
            db.executemany(
                "INSERT INTO classifications (image_id, model_version, label, score, "
                "probs_json, created_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(image_id, model_version) DO UPDATE SET label = excluded.label, "
                "score = excluded.score, probs_json = excluded.probs_json, "
                "created_at = excluded.created_at",
                values,
            )

    def classifications(
        self, version: str, image_ids: Iterable[int] | None = None
    ) -> dict[int, Classification]:
        """image id -> the classifier's answer; with ``image_ids``, only those images
        that have one."""
        rows = self._version_rows(
            "SELECT * FROM classifications WHERE model_version = ?", version, image_ids
        )
        return {
            r["image_id"]: Classification(
                image_id=r["image_id"],
                model_version=r["model_version"],
                label=r["label"],
                score=r["score"],
                probs=json.loads(r["probs_json"]),
                created_at=r["created_at"],
            )
            for r in rows
        }

    def versions_with_predictions(self) -> list[str]:
        """Model versions with at least one stored prediction, by name."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT model_version FROM predictions ORDER BY model_version"
            )
        ]
