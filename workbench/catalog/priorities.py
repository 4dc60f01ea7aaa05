"""Table ``priorities`` (see schema.py): annotation priority per model version."""

from __future__ import annotations

import json
from collections.abc import Iterable

from .core import chunks, now_iso
from .records import PriorityRecord


class PrioritiesMixin:
    def store_priorities(
        self, model_version: str, rows: list[tuple[int, float, dict]], selected: list[int] = ()
    ) -> None:
        """Replace the priorities of a version: rows of (image_id, uncertainty, components).
        Rank 1 is the most uncertain."""
        ranked = sorted(rows, key=lambda r: (-r[1], r[0]))
        chosen = set(selected)
        ts = now_iso()
        with self.atomic() as db:
            db.execute("DELETE FROM priorities WHERE model_version = ?", (model_version,))
            db.executemany(
                "INSERT INTO priorities (image_id, model_version, uncertainty, components_json, "
                "rank, selected, created_at) VALUES (?,?,?,?,?,?,?)",
                [
                    (i, model_version, u, json.dumps(c), n, int(i in chosen), ts)
                    for n, (i, u, c) in enumerate(ranked, start=1)
                ],
            )

    def priorities(self, model_version: str, selected_only: bool = False) -> list[PriorityRecord]:
        """A version's priorities, rank 1 (the most uncertain) first."""
        sql = (
            "SELECT p.image_id, p.uncertainty, p.components_json, p.rank, p.selected, i.path "
            "FROM priorities p JOIN images i ON i.id = p.image_id WHERE p.model_version = ?"
        )
        if selected_only:
            sql += " AND p.selected = 1"
        sql += " ORDER BY p.rank"
        return [
            PriorityRecord(
                image_id=r["image_id"],
                path=r["path"],
                uncertainty=r["uncertainty"],
                components=json.loads(r["components_json"] or "{}"),
                rank=r["rank"],
                selected=bool(r["selected"]),
            )
            for r in self.db.execute(sql, (model_version,))
        ]

    def uncertainty_by_image(
        self, model_version: str, image_ids: Iterable[int] | None = None
    ) -> dict[int, float]:
        """image id -> uncertainty under ``model_version``; with ``image_ids``, only
        those images that have a priority."""
        sql = "SELECT image_id, uncertainty FROM priorities WHERE model_version = ?"
        if image_ids is None:
            return {r[0]: r[1] for r in self.db.execute(sql, (model_version,))}
        out: dict[int, float] = {}
        for chunk in chunks(sorted(set(image_ids))):
            marks = ",".join("?" * len(chunk))
            out.update(
                (r[0], r[1])
                for r in self.db.execute(
                    f"{sql} AND image_id IN ({marks})", (model_version, *chunk)
                )
            )
        return out

    def latest_prioritized_version(self) -> str | None:
        """The model version whose priorities were stored last, or None."""
        row = self.db.execute(
            "SELECT model_version FROM priorities ORDER BY created_at DESC, model_version LIMIT 1"
        ).fetchone()
        return row[0] if row else None
