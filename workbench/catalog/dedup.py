"""Tables ``dup_groups`` and ``dup_members`` (see schema.py): duplicate and conflict
groups and how each was settled."""

from __future__ import annotations

from collections.abc import Iterable

from .core import now_iso
from .records import DupGroup, DupMember


class DedupMixin:
    # ---- groups --------------------------------------------------------------
    def _group(self, row) -> DupGroup:
        members = [
            DupMember(r["image_id"], bool(r["keep"]), r["distance"])
            for r in self.db.execute(
                "SELECT image_id, keep, distance FROM dup_members WHERE group_id = ? "
                "ORDER BY image_id",
                (row["id"],),
            )
        ]
        return DupGroup(**dict(row), members=members)

    def dup_group(self, group_id: int) -> DupGroup | None:
        row = self.db.execute("SELECT * FROM dup_groups WHERE id = ?", (group_id,)).fetchone()
        return self._group(row) if row else None

    def dup_group_by_key(self, group_key: str) -> DupGroup | None:
        row = self.db.execute(
            "SELECT * FROM dup_groups WHERE group_key = ?", (group_key,)
        ).fetchone()
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

    def save_dup_group(
        self,
        group_key: str,
        kind: str,
        members: list[DupMember],
        method: str | None = None,
        max_distance: int | None = None,
    ) -> int:
        """Insert a group, or update the one with this key (its resolution is kept)."""
        ts = now_iso()
        with self.atomic() as db:
            row = db.execute(
                "SELECT id FROM dup_groups WHERE group_key = ?", (group_key,)
            ).fetchone()
            if row is None:
                group_id = db.execute(
                    "INSERT INTO dup_groups (group_key, kind, method, max_distance, created_at, "
                    "updated_at) VALUES (?,?,?,?,?,?)",
                    (group_key, kind, method, max_distance, ts, ts),
                ).lastrowid
            else:
                group_id = row[0]
                db.execute(
                    "UPDATE dup_groups SET kind = ?, method = ?, max_distance = ?, "
                    "updated_at = ? WHERE id = ?",
                    (kind, method, max_distance, ts, group_id),
                )
                db.execute("DELETE FROM dup_members WHERE group_id = ?", (group_id,))
            db.executemany(
                "INSERT INTO dup_members (group_id, image_id, keep, distance) VALUES (?,?,?,?)",
                [(group_id, m.image_id, int(m.keep), m.distance) for m in members],
            )
        return group_id

    def delete_dup_groups(self, group_ids: Iterable[int]) -> None:
        with self.atomic() as db:
            db.executemany("DELETE FROM dup_groups WHERE id = ?", [(i,) for i in group_ids])

    def set_dup_keep(self, group_id: int, keep_image_ids: Iterable[int]) -> None:
        keep = set(keep_image_ids)
        with self.atomic() as db:
            rows = db.execute(
                "SELECT image_id FROM dup_members WHERE group_id = ?", (group_id,)
            ).fetchall()
            db.executemany(
                "UPDATE dup_members SET keep = ? WHERE group_id = ? AND image_id = ?",
                [(int(r[0] in keep), group_id, r[0]) for r in rows],
            )

    def resolve_dup_group(
        self,
        group_id: int,
        resolution: str,
        label: str | None,
        resolved_by: str,
        kind: str | None = None,
    ) -> None:
        """Record how a group was settled (``label`` or ``distinct``)."""
        if resolution not in ("label", "distinct"):
            raise ValueError(f"resolution must be 'label' or 'distinct', got {resolution!r}")
        ts = now_iso()
        with self.atomic() as db:
            db.execute(
                "UPDATE dup_groups SET resolution = ?, resolved_label = ?, resolved_by = ?, "
                "resolved_at = ?, kind = COALESCE(?, kind), updated_at = ? WHERE id = ?",
                (resolution, label, resolved_by, ts, kind, ts, group_id),
            )
