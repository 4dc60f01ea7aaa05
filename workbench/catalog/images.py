"""Tables ``images``, ``boxes``, ``image_hashes`` and ``image_embeddings`` (see
schema.py): images, their ground-truth boxes, and the cached perceptual hashes and CNN
embeddings per image.

A hash view other than the whole image is stored as its own ``method`` row
(``dedup.hashing.cache_keys``: ``phash:pipeline2`` for the whole image,
``phash:pipeline2:centre`` for the centre view; the number is the hashing pipeline's
version, so hashes of an older pipeline are not read).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .core import now_iso
from .records import Box, ImageRecord

_IMAGE_COLS = (
    "id, path, sha256, file_size, mtime, width, height, label, status, status_reason, "
    "source_format, source, annotated, split, ingested_at, updated_at"
)


def _image(row) -> ImageRecord:
    d = dict(row)
    d["annotated"] = bool(d["annotated"])
    return ImageRecord(**d)


def _box(row) -> Box:
    return Box(
        label=row["label"],
        x1=row["x1"],
        y1=row["y1"],
        x2=row["x2"],
        y2=row["y2"],
        source=row["source"],
        annotator=row["annotator"],
        annotation_id=row["annotation_id"],
    )


class ImagesMixin:
    # ---- reading ----------------------------------------------------------
    def get_image(self, image_id: int) -> ImageRecord | None:
        row = self.db.execute(
            f"SELECT {_IMAGE_COLS} FROM images WHERE id = ?", (image_id,)
        ).fetchone()
        return _image(row) if row else None

    def get_image_by_path(self, path: str) -> ImageRecord | None:
        row = self.db.execute(
            f"SELECT {_IMAGE_COLS} FROM images WHERE path = ?", (str(path),)
        ).fetchone()
        return _image(row) if row else None

    def images_by_sha256(self, sha256: str) -> list[ImageRecord]:
        rows = self.db.execute(
            f"SELECT {_IMAGE_COLS} FROM images WHERE sha256 = ? ORDER BY id", (sha256,)
        )
        return [_image(r) for r in rows]

    def images(
        self,
        status: str | Iterable[str] | None = None,
        label: str | None = None,
        annotated: bool | None = None,
        split: str | None = None,
        ids: Iterable[int] | None = None,
    ) -> list[ImageRecord]:
        """Images in ingest order, filtered by the given fields."""
        where, args = [], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if label is not None:
            where.append("label = ?")
            args.append(label)
        if annotated is not None:
            where.append("annotated = ?")
            args.append(int(annotated))
        if split is not None:
            where.append("split = ?")
            args.append(split)
        sql = f"SELECT {_IMAGE_COLS} FROM images"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        rows = [_image(r) for r in self.db.execute(sql, args)]
        if ids is not None:
            wanted = set(ids)
            rows = [r for r in rows if r.id in wanted]
        return rows

    def boxes_for(self, image_id: int) -> list[Box]:
        rows = self.db.execute("SELECT * FROM boxes WHERE image_id = ? ORDER BY id", (image_id,))
        return [_box(r) for r in rows]

    def boxes_by_image(self, image_ids: Iterable[int] | None = None) -> dict[int, list[Box]]:
        out: dict[int, list[Box]] = {}
        if image_ids is None:
            for r in self.db.execute("SELECT * FROM boxes ORDER BY image_id, id"):
                out.setdefault(r["image_id"], []).append(_box(r))
            return out
        ids = list(dict.fromkeys(image_ids))
        for i in ids:
            out[i] = []
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(
                f"SELECT * FROM boxes WHERE image_id IN ({marks}) ORDER BY image_id, id", chunk
            ):
                out[r["image_id"]].append(_box(r))
        return out

    # ---- writing ------------------------------------------------------------
    def add_image(self, rec: ImageRecord, boxes: list[Box] | None = None) -> int:
        """Insert one image (and its boxes) in one transaction; returns its id."""
        ts = now_iso()
        with self.atomic() as db:
            cur = db.execute(
                "INSERT INTO images (path, sha256, file_size, mtime, width, height, label, status, "
                "status_reason, source_format, source, annotated, split, ingested_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.path,
                    rec.sha256,
                    rec.file_size,
                    rec.mtime,
                    rec.width,
                    rec.height,
                    rec.label,
                    rec.status,
                    rec.status_reason,
                    rec.source_format,
                    rec.source,
                    int(rec.annotated or boxes is not None),
                    rec.split,
                    ts,
                    ts,
                ),
            )
            image_id = cur.lastrowid
            if boxes is not None:
                self._insert_boxes(image_id, boxes, ts)
        return image_id

    def update_image(self, image_id: int, **fields) -> None:
        """Update named columns of one image (column names are checked)."""
        allowed = set(_IMAGE_COLS.replace(" ", "").split(",")) - {"id", "ingested_at"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown image fields: {sorted(bad)}")
        if not fields:
            return
        if "annotated" in fields:
            fields["annotated"] = int(bool(fields["annotated"]))
        fields["updated_at"] = now_iso()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.atomic() as db:
            db.execute(f"UPDATE images SET {cols} WHERE id = ?", (*fields.values(), image_id))

    def replace_boxes(
        self, image_id: int, boxes: list[Box], source: str | None = None, annotated: bool = True
    ) -> None:
        """Make ``boxes`` the image's ground truth. With ``source``, only boxes of that
        source are replaced (e.g. Label Studio annotations replace earlier pulls)."""
        ts = now_iso()
        with self.atomic() as db:
            if source is None:
                db.execute("DELETE FROM boxes WHERE image_id = ?", (image_id,))
            else:
                db.execute(
                    "DELETE FROM boxes WHERE image_id = ? AND source = ?", (image_id, source)
                )
            self._insert_boxes(image_id, boxes, ts)
            db.execute(
                "UPDATE images SET annotated = ?, updated_at = ? WHERE id = ?",
                (int(annotated), ts, image_id),
            )

    def _insert_boxes(self, image_id: int, boxes: list[Box], ts: str) -> None:
        self.db.executemany(
            "INSERT INTO boxes (image_id, label, x1, y1, x2, y2, source, annotator, annotation_id, "
            "created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    image_id,
                    b.label,
                    b.x1,
                    b.y1,
                    b.x2,
                    b.y2,
                    b.source,
                    b.annotator,
                    b.annotation_id,
                    ts,
                )
                for b in boxes
            ],
        )

    def set_status(self, image_ids: Iterable[int], status: str, reason: str | None = None) -> None:
        ts = now_iso()
        with self.atomic() as db:
            db.executemany(
                "UPDATE images SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?",
                [(status, reason, ts, i) for i in image_ids],
            )

    def set_splits(self, assignments: dict[int, str], reassign: bool = False) -> None:
        """Assign splits; an image that already has a split keeps it (splits are sticky)
        unless ``reassign`` (only for moving a duplicate group into one split)."""
        ts = now_iso()
        only_new = "" if reassign else " AND split IS NULL"
        with self.atomic() as db:
            db.executemany(
                "UPDATE images SET split = ?, updated_at = ? WHERE id = ?" + only_new,
                [(s, ts, i) for i, s in assignments.items()],
            )

    # ---- hashes --------------------------------------------------------------
    def image_hashes(self, method: str) -> dict[int, tuple[str, str | None]]:
        """Cached hashes of one method: ``{image_id: (hash, mirror_hash)}``."""
        rows = self.db.execute(
            "SELECT image_id, hash, mirror_hash FROM image_hashes WHERE method = ?", (method,)
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def save_image_hashes(self, method: str, rows: Iterable[tuple[int, str, str | None]]) -> None:
        with self.atomic() as db:
            db.executemany(
                "INSERT INTO image_hashes (image_id, method, hash, mirror_hash) VALUES (?,?,?,?) "
                "ON CONFLICT(image_id, method) DO UPDATE SET hash = excluded.hash, "
                "mirror_hash = excluded.mirror_hash",
                [(i, method, h, m) for i, h, m in rows],
            )

    def forget_image_hashes(self, image_ids: Iterable[int]) -> None:
        """Drop cached hashes and embeddings (e.g. the file changed), so the next run
        computes them again."""
        ids = [(i,) for i in image_ids]
        with self.atomic() as db:
            db.executemany("DELETE FROM image_hashes WHERE image_id = ?", ids)
            db.executemany("DELETE FROM image_embeddings WHERE image_id = ?", ids)

    # ---- embeddings -------------------------------------------------------------
    def image_embeddings(self, model: str) -> dict[int, bytes]:
        """Cached embeddings of one model, ``{image_id: float32 bytes}``, only those
        computed from the image's current content (its sha256)."""
        rows = self.db.execute(
            "SELECT e.image_id, e.vector FROM image_embeddings e JOIN images i "
            "ON i.id = e.image_id AND i.sha256 = e.sha256 WHERE e.model = ?",
            (model,),
        )
        return {r[0]: bytes(r[1]) for r in rows}

    def save_image_embeddings(self, model: str, rows: Iterable[tuple[int, str, bytes]]) -> None:
        """Store ``(image_id, sha256, vector bytes)`` rows, replacing older ones."""
        with self.atomic() as db:
            db.executemany(
                "INSERT INTO image_embeddings (image_id, model, sha256, vector) "
                "VALUES (?,?,?,?) ON CONFLICT(image_id, model) DO UPDATE SET "
                "sha256 = excluded.sha256, vector = excluded.vector",
                [(i, model, sha, vec) for i, sha, vec in rows],
            )

    # ---- summaries ------------------------------------------------------------
    def status_counts(self) -> dict:
        """Images by status and label; annotated images and boxes only of readable
        images (an unreadable one's boxes stay stored, but nothing uses them)."""
        images = self.db.execute("SELECT status, label, annotated FROM images").fetchall()
        boxes = self.db.execute(
            "SELECT b.label FROM boxes b JOIN images i ON i.id = b.image_id "
            "WHERE i.status != 'unreadable'"
        ).fetchall()
        return {
            "images": {
                "total": len(images),
                "by_status": dict(sorted(Counter(r["status"] for r in images).items())),
                "by_label": dict(sorted(Counter(r["label"] or "(none)" for r in images).items())),
                "annotated": sum(r["annotated"] for r in images if r["status"] != "unreadable"),
            },
            "boxes": {
                "total": len(boxes),
                "by_label": dict(sorted(Counter(r["label"] for r in boxes).items())),
            },
        }
