"""Table ``webhook_events`` (see schema.py): the events Label Studio sent to the ML
backend's ``/webhook``.

An event is ``consumed`` once a background retrain has counted it, so the next
``--retrain-after N`` threshold counts only annotations that arrived since.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .core import now_iso
from .records import EventRecord

# actions that mean "a person gave us new ground truth"
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")


def _event(row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        received_at=row["received_at"],
        action=row["action"],
        project_id=row["project_id"],
        task_id=row["task_id"],
        annotation_id=row["annotation_id"],
        payload=json.loads(row["payload_json"]) if row["payload_json"] else None,
        consumed=bool(row["consumed"]),
    )


class EventsMixin:
    def record_webhook_event(
        self,
        action: str,
        payload: dict | None = None,
        project_id: int | None = None,
        task_id: int | None = None,
        annotation_id: int | None = None,
    ) -> int:
        """Store one event as received; returns its id."""
        with self.atomic() as db:
            cur = db.execute(
                "INSERT INTO webhook_events (received_at, action, project_id, task_id, "
                "annotation_id, payload_json) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    now_iso(),
                    action,
                    project_id,
                    task_id,
                    annotation_id,
                    json.dumps(payload, default=str) if payload is not None else None,
                ),
            )
            return int(cur.lastrowid)

    def webhook_events(
        self, action: str | None = None, consumed: bool | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Events, oldest first (``payload`` decoded)."""
        sql, args = "SELECT * FROM webhook_events WHERE 1 = 1", []
        if action is not None:
            sql += " AND action = ?"
            args.append(action)
        if consumed is not None:
            sql += " AND consumed = ?"
            args.append(int(consumed))
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [_event(r) for r in self.db.execute(sql, args)]

    def pending_annotation_events(self) -> list[int]:
        """Ids of annotation events no retrain has counted yet."""
        marks = ",".join("?" * len(ANNOTATION_ACTIONS))
        return [
            r[0]
            for r in self.db.execute(
                f"SELECT id FROM webhook_events WHERE consumed = 0 AND action IN ({marks}) ORDER BY id",
                ANNOTATION_ACTIONS,
            )
        ]

    def consume_webhook_events(self, event_ids: Iterable[int]) -> None:
        ids = [(int(i),) for i in event_ids]
        with self.atomic() as db:
            db.executemany("UPDATE webhook_events SET consumed = 1 WHERE id = ?", ids)
