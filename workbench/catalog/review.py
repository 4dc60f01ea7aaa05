"""Read paths the review (FiftyOne) feature needs: model versions, predictions,
priorities and duplicate-group membership. Read-only: the tables are written by
the models, priorities and dedup features."""
from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class ModelVersionInfo:
    """One version that has predictions in the catalog (registered in ``models`` or not)."""

    version: str
    parent: str | None = None
    created_at: str | None = None
    promoted: bool = False
    promoted_at: str | None = None
    level: str | None = None


@dataclass
class DedupMembership:
    """An image's place in duplicate groups (the first group when it is in several)."""

    group_id: int
    kind: str              # duplicate|conflict (conflict wins when in both kinds)
    keep: bool
    resolution: str | None = None


class ReviewMixin:
    def prediction_versions(self) -> list[ModelVersionInfo]:
        """Versions with at least one stored prediction, oldest first (registered
        versions by creation time, then unregistered ones by name)."""
        rows = self.db.execute(
            "SELECT p.model_version AS version, m.parent, m.created_at, "
            "COALESCE(m.promoted, 0) AS promoted, m.promoted_at, m.level "
            "FROM (SELECT DISTINCT model_version FROM predictions) p "
            "LEFT JOIN models m ON m.version = p.model_version "
            "ORDER BY m.created_at IS NULL, m.created_at, p.model_version").fetchall()
        return [ModelVersionInfo(version=r["version"], parent=r["parent"],
                                 created_at=r["created_at"], promoted=bool(r["promoted"]),
                                 promoted_at=r["promoted_at"], level=r["level"]) for r in rows]

    def predictions_by_image(self, model_version: str) -> dict[int, list[dict]]:
        """``{image_id: [{"label","x1","y1","x2","y2","score","probs"}, ...]}`` for one version."""
        rows = self.db.execute(
            "SELECT image_id, boxes_json FROM predictions WHERE model_version = ?",
            (model_version,))
        return {r["image_id"]: json.loads(r["boxes_json"]) for r in rows}

    def uncertainty_by_image(self, model_version: str | None = None
                             ) -> tuple[str | None, dict[int, tuple[float, int | None]]]:
        """``(version, {image_id: (uncertainty, rank)})`` for the given version, or for
        the version prioritised most recently when ``None``; ``(None, {})`` if none."""
        if model_version is None:
            row = self.db.execute(
                "SELECT model_version FROM priorities ORDER BY created_at DESC LIMIT 1").fetchone()
            if row is None:
                return None, {}
            model_version = row[0]
        rows = self.db.execute(
            "SELECT image_id, uncertainty, rank FROM priorities WHERE model_version = ?",
            (model_version,)).fetchall()
        if not rows:
            return None, {}
        return model_version, {r["image_id"]: (r["uncertainty"], r["rank"]) for r in rows}

    def dedup_membership(self) -> dict[int, DedupMembership]:
        """``{image_id: DedupMembership}`` for every image in a duplicate group."""
        rows = self.db.execute(
            "SELECT m.image_id, m.group_id, m.keep, g.kind, g.resolution "
            "FROM dup_members m JOIN dup_groups g ON g.id = m.group_id "
            "ORDER BY m.image_id, g.kind = 'conflict' DESC, m.group_id")
        out: dict[int, DedupMembership] = {}
        for r in rows:
            out.setdefault(r["image_id"], DedupMembership(
                group_id=r["group_id"], kind=r["kind"], keep=bool(r["keep"]),
                resolution=r["resolution"]))
        return out
