"""Catalog tables for duplicates: image_hashes, dup_groups, dup_members, and
ls_review_tasks (`wb dedup review`: one Label Studio task per group); see schema.py.

Owned by the dedup feature. A hash view other than the whole image is stored as its
own ``method`` row (``phash`` for the whole image, ``phash:centre`` for the centre view).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .core import now_iso


@dataclass
class DupMember:
    image_id: int
    keep: bool
    distance: int | None


@dataclass
class DupGroup:
    id: int
    group_key: str
    kind: str                      # duplicate | conflict
    method: str | None
    max_distance: int | None
    resolution: str | None         # None (open) | label | distinct
    resolved_label: str | None
    resolved_by: str | None
    resolved_at: str | None
    created_at: str
    updated_at: str
    members: list[DupMember] = field(default_factory=list)

    @property
    def image_ids(self) -> list[int]:
        return [m.image_id for m in self.members]

    @property
    def settled(self) -> bool:
        return self.resolution is not None


@dataclass
class ReviewTask:
    """A group's task in the Label Studio review project (``wb dedup review``)."""

    project_id: int
    group_id: int
    group_key: str                 # the group's members when the task was made
    task_id: int
    pushed_at: str
    applied_annotation_id: int | None
    applied_updated_at: str | None


class DedupMixin:
    # ---- hashes --------------------------------------------------------------
    def image_hashes(self, method: str) -> dict[int, tuple[str, str | None]]:
        """Cached hashes of one method: ``{image_id: (hash, mirror_hash)}``."""
        rows = self.db.execute(
            "SELECT image_id, hash, mirror_hash FROM image_hashes WHERE method = ?", (method,))
        return {r[0]: (r[1], r[2]) for r in rows}

    def save_image_hashes(self, method: str,
                          rows: Iterable[tuple[int, str, str | None]]) -> None:
        with self.atomic() as db:
            db.executemany(
                "INSERT INTO image_hashes (image_id, method, hash, mirror_hash) VALUES (?,?,?,?) "
                "ON CONFLICT(image_id, method) DO UPDATE SET hash = excluded.hash, "
                "mirror_hash = excluded.mirror_hash",
                [(i, method, h, m) for i, h, m in rows])

    def forget_image_hashes(self, image_ids: Iterable[int]) -> None:
        """Drop cached hashes (e.g. the file changed), so the next run hashes again."""
        with self.atomic() as db:
            db.executemany("DELETE FROM image_hashes WHERE image_id = ?",
                           [(i,) for i in image_ids])

    # ---- groups --------------------------------------------------------------
    def _group(self, row) -> DupGroup:
        g = DupGroup(**{k: row[k] for k in row.keys()})
        g.members = [DupMember(r["image_id"], bool(r["keep"]), r["distance"])
                     for r in self.db.execute(
                         "SELECT image_id, keep, distance FROM dup_members WHERE group_id = ? "
                         "ORDER BY image_id", (g.id,))]
        return g

    def dup_group(self, group_id: int) -> DupGroup | None:
        row = self.db.execute("SELECT * FROM dup_groups WHERE id = ?", (group_id,)).fetchone()
        return self._group(row) if row else None

    def dup_group_by_key(self, group_key: str) -> DupGroup | None:
        row = self.db.execute("SELECT * FROM dup_groups WHERE group_key = ?",
                              (group_key,)).fetchone()
        return self._group(row) if row else None

    def dup_groups(self, kind: str | None = None, settled: bool | None = None) -> list[DupGroup]:
        where, args = [], []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if settled is not None:
            where.append("resolution IS NOT NULL" if settled else "resolution IS NULL")
        sql = "SELECT * FROM dup_groups"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._group(r) for r in self.db.execute(sql + " ORDER BY id", args)]

    def save_dup_group(self, group_key: str, kind: str, members: list[DupMember],
                       method: str | None = None, max_distance: int | None = None) -> int:
        """Insert a group, or update the one with this key (its resolution is kept)."""
        ts = now_iso()
        with self.atomic() as db:
            row = db.execute("SELECT id FROM dup_groups WHERE group_key = ?",
                             (group_key,)).fetchone()
            if row is None:
                group_id = db.execute(
                    "INSERT INTO dup_groups (group_key, kind, method, max_distance, created_at, "
                    "updated_at) VALUES (?,?,?,?,?,?)",
                    (group_key, kind, method, max_distance, ts, ts)).lastrowid
            else:
                group_id = row[0]
                db.execute("UPDATE dup_groups SET kind = ?, method = ?, max_distance = ?, "
                           "updated_at = ? WHERE id = ?",
                           (kind, method, max_distance, ts, group_id))
                db.execute("DELETE FROM dup_members WHERE group_id = ?", (group_id,))
            db.executemany(
                "INSERT INTO dup_members (group_id, image_id, keep, distance) VALUES (?,?,?,?)",
                [(group_id, m.image_id, int(m.keep), m.distance) for m in members])
        return group_id

    def delete_dup_groups(self, group_ids: Iterable[int]) -> None:
        with self.atomic() as db:
            db.executemany("DELETE FROM dup_groups WHERE id = ?", [(i,) for i in group_ids])

    def set_dup_keep(self, group_id: int, keep_image_ids: Iterable[int]) -> None:
        keep = set(keep_image_ids)
        with self.atomic() as db:
            rows = db.execute("SELECT image_id FROM dup_members WHERE group_id = ?",
                              (group_id,)).fetchall()
            db.executemany("UPDATE dup_members SET keep = ? WHERE group_id = ? AND image_id = ?",
                           [(int(r[0] in keep), group_id, r[0]) for r in rows])

    def resolve_dup_group(self, group_id: int, resolution: str, label: str | None,
                          resolved_by: str, kind: str | None = None) -> None:
        """Record how a group was settled (``label`` or ``distinct``)."""
        if resolution not in ("label", "distinct"):
            raise ValueError(f"resolution must be 'label' or 'distinct', got {resolution!r}")
        ts = now_iso()
        with self.atomic() as db:
            db.execute("UPDATE dup_groups SET resolution = ?, resolved_label = ?, resolved_by = ?, "
                       "resolved_at = ?, kind = COALESCE(?, kind), updated_at = ? WHERE id = ?",
                       (resolution, label, resolved_by, ts, kind, ts, group_id))

    # ---- review tasks (Label Studio) ----------------------------------------
    def review_tasks(self, project_id: int) -> dict[int, ReviewTask]:
        """group id -> its task in the review project."""
        rows = self.db.execute("SELECT * FROM ls_review_tasks WHERE project_id = ?",
                               (project_id,))
        return {r["group_id"]: ReviewTask(**{k: r[k] for k in r.keys()}) for r in rows}

    def record_review_tasks(self, project_id: int,
                            rows: Iterable[tuple[int, str, int]]) -> None:
        """Record pushed review tasks ``(group_id, group_key, task_id)`` in one transaction."""
        ts = now_iso()
        with self.atomic() as db:
            db.executemany(
                "INSERT INTO ls_review_tasks (project_id, group_id, group_key, task_id, pushed_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT(project_id, group_id) DO UPDATE SET "
                "group_key = excluded.group_key, task_id = excluded.task_id, "
                "pushed_at = excluded.pushed_at, applied_annotation_id = NULL, "
                "applied_updated_at = NULL",
                [(project_id, g, k, t, ts) for g, k, t in rows])

    def forget_review_tasks(self, project_id: int, group_ids: Iterable[int] | None = None) -> None:
        """Drop the records of a review project (all, or those of some groups)."""
        with self.atomic() as db:
            if group_ids is None:
                db.execute("DELETE FROM ls_review_tasks WHERE project_id = ?", (project_id,))
            else:
                db.executemany("DELETE FROM ls_review_tasks WHERE project_id = ? AND group_id = ?",
                               [(project_id, g) for g in group_ids])

    def set_review_applied(self, project_id: int, group_id: int, annotation_id: int,
                           updated_at: str | None) -> None:
        """Remember which answer settled a group (a changed answer is applied again)."""
        with self.atomic() as db:
            db.execute("UPDATE ls_review_tasks SET applied_annotation_id = ?, "
                       "applied_updated_at = ? WHERE project_id = ? AND group_id = ?",
                       (annotation_id, updated_at, project_id, group_id))
