"""Tables ``field_devices``, ``field_photos`` and ``field_feedback`` (see schema.py): the
field app's device tokens (hashes only), the photos devices uploaded with the model's
answer, and every verdict they sent.

A photo's file is an ``images`` row (``source_format = 'field'``) and its detections a
``predictions`` row of the model that answered, written in the same transaction as the
``field_photos`` row, so the rest of the loop (push, prioritize, review) sees it as any
other image.
"""

from __future__ import annotations

import json

from .core import now_iso
from .records import FieldDevice, FieldFeedback, FieldPhoto, ImageRecord

FIELD_SOURCE = "field"  # images.source_format and images.source of field photos
VERDICTS = ("correct", "wrong")


def _device(row) -> FieldDevice:
    return FieldDevice(row["name"], row["created_at"], row["revoked_at"], row["last_used_at"])


def _photo(row) -> FieldPhoto:
    return FieldPhoto(
        id=row["id"],
        image_id=row["image_id"],
        device=row["device"],
        model_version=row["model_version"],
        answer=row["answer"],
        answer_score=row["answer_score"],
        uncertainty=row["uncertainty"],
        uncertain=bool(row["uncertain"]),
        detections=json.loads(row["detections_json"]),
        created_at=row["created_at"],
    )


def _feedback(row) -> FieldFeedback:
    return FieldFeedback(
        id=row["id"],
        photo_id=row["photo_id"],
        device=row["device"],
        verdict=row["verdict"],
        label=row["label"],
        note=row["note"],
        created_at=row["created_at"],
    )


class FieldMixin:
    # ---- devices ------------------------------------------------------------------
    def add_field_device(self, name: str, token_sha256: str) -> bool:
        """Store a device's token hash; a revoked device of that name gets the new one.
        False (nothing changed) when the name already has a token in use."""
        with self.atomic() as db:
            row = db.execute("SELECT revoked_at FROM field_devices WHERE name = ?", (name,))
            row = row.fetchone()
            if row is not None and row["revoked_at"] is None:
                return False
            db.execute(
                "INSERT INTO field_devices (name, token_sha256, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET token_sha256 = excluded.token_sha256, "
                "created_at = excluded.created_at, revoked_at = NULL, last_used_at = NULL",
                (name, token_sha256, now_iso()),
            )
        return True

    def revoke_field_device(self, name: str) -> bool:
        """Refuse the device's token from now on; False when it had none in use."""
        with self.atomic() as db:
            cur = db.execute(
                "UPDATE field_devices SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (now_iso(), name),
            )
        return cur.rowcount > 0

    def field_devices(self) -> list[FieldDevice]:
        rows = self.db.execute("SELECT * FROM field_devices ORDER BY name")
        return [_device(r) for r in rows]

    def field_device_for_token(self, token_sha256: str) -> FieldDevice | None:
        """The device whose token in use has this hash (its last use recorded), or None."""
        row = self.db.execute(
            "SELECT * FROM field_devices WHERE token_sha256 = ? AND revoked_at IS NULL",
            (token_sha256,),
        ).fetchone()
        if row is None:
            return None
        with self.atomic() as db:
            db.execute(
                "UPDATE field_devices SET last_used_at = ? WHERE name = ?", (now_iso(), row["name"])
            )
        return _device(row)

    # ---- photos ---------------------------------------------------------------------
    def record_field_photo(
        self,
        image: ImageRecord,
        device: str,
        model_version: str,
        detections: list[dict],
        shown: list[dict],
        answer: str,
        answer_score: float | None,
        uncertainty: float,
        uncertain: bool,
    ) -> FieldPhoto:
        """Catalog one upload in one transaction: the image (reused when its file, named
        by content hash, is already an image), the model's detections (``predictions``)
        and the ``field_photos`` row."""
        with self.atomic() as db:
            known = self.get_image_by_path(image.path)
            image_id = known.id if known is not None else self.add_image(image)
            self.store_predictions(model_version, {image_id: detections})
            cur = db.execute(
                "INSERT INTO field_photos (image_id, device, model_version, answer, answer_score, "
                "uncertainty, uncertain, detections_json, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    image_id,
                    device,
                    model_version,
                    answer,
                    answer_score,
                    float(uncertainty),
                    int(uncertain),
                    json.dumps(shown),
                    now_iso(),
                ),
            )
            photo_id = int(cur.lastrowid)
        return self.field_photo(photo_id)

    def field_photo(self, photo_id: int) -> FieldPhoto | None:
        row = self.db.execute("SELECT * FROM field_photos WHERE id = ?", (photo_id,)).fetchone()
        return _photo(row) if row else None

    def field_photos(self, since: str | None = None, until: str | None = None) -> list[FieldPhoto]:
        """Uploads in time order; ``since`` inclusive, ``until`` exclusive (ISO times)."""
        sql, args = "SELECT * FROM field_photos WHERE 1 = 1", []
        if since is not None:
            sql += " AND created_at >= ?"
            args.append(since)
        if until is not None:
            sql += " AND created_at < ?"
            args.append(until)
        return [_photo(r) for r in self.db.execute(sql + " ORDER BY id", args)]

    # ---- feedback ---------------------------------------------------------------------
    def record_field_feedback(
        self,
        photo_id: int,
        device: str,
        verdict: str,
        label: str | None = None,
        note: str | None = None,
    ) -> tuple[FieldFeedback, bool]:
        """Add a verdict unless it repeats this device's latest one on the photo; returns
        (the device's verdict now, whether it changed). The photo's image takes the class
        the verdict names (the answer when correct, ``label`` when wrong) as its label, a
        hint for the annotators."""
        with self.atomic() as db:
            latest = db.execute(
                "SELECT * FROM field_feedback WHERE photo_id = ? AND device = ? "
                "ORDER BY id DESC LIMIT 1",
                (photo_id, device),
            ).fetchone()
            if latest is not None and (latest["verdict"], latest["label"], latest["note"]) == (
                verdict,
                label,
                note,
            ):
                return _feedback(latest), False
            cur = db.execute(
                "INSERT INTO field_feedback (photo_id, device, verdict, label, note, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (photo_id, device, verdict, label, note, now_iso()),
            )
            row = db.execute(
                "SELECT * FROM field_feedback WHERE id = ?", (cur.lastrowid,)
            ).fetchone()
            photo = self.field_photo(photo_id)
            named = photo.answer if verdict == "correct" else label
            if named is not None:
                self.update_image(photo.image_id, label=named)
        return _feedback(row), True

    def field_feedback(self, photo_id: int | None = None) -> list[FieldFeedback]:
        """Every verdict sent (the history), oldest first."""
        sql, args = "SELECT * FROM field_feedback", []
        if photo_id is not None:
            sql += " WHERE photo_id = ?"
            args.append(photo_id)
        return [_feedback(r) for r in self.db.execute(sql + " ORDER BY id", args)]

    def latest_field_verdicts(self, photo_ids: list[int] | None = None) -> dict[int, FieldFeedback]:
        """photo id -> the latest verdict any device sent on it (the one a report counts)."""
        rows = self.db.execute(
            "SELECT * FROM field_feedback WHERE id IN "
            "(SELECT MAX(id) FROM field_feedback GROUP BY photo_id) ORDER BY photo_id"
        )
        wanted = None if photo_ids is None else set(photo_ids)
        return {
            r["photo_id"]: _feedback(r) for r in rows if wanted is None or r["photo_id"] in wanted
        }

    def field_queue_images(self) -> list[int]:
        """Image ids of field photos that should be annotated first: the latest verdict
        says the answer was wrong (most recent first), then answers that were uncertain
        (most uncertain first), whatever their verdict. Only active images without ground
        truth."""
        latest = self.latest_field_verdicts()
        photos = self.field_photos()
        wrong = sorted(
            (p for p in photos if p.id in latest and latest[p.id].verdict == "wrong"),
            key=lambda p: -latest[p.id].id,
        )
        unsure = sorted((p for p in photos if p.uncertain), key=lambda p: (-p.uncertainty, p.id))
        order = list(dict.fromkeys(p.image_id for p in [*wrong, *unsure]))
        if not order:
            return []
        open_ = {im.id for im in self.images(status="active", annotated=False, ids=order)}
        return [i for i in order if i in open_]
