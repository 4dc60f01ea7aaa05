"""Read paths the review (FiftyOne) feature needs beyond the other areas' methods
(``models()``/``predictions()`` in models.py, ``priorities()`` in priorities.py,
``dup_groups()`` in dedup.py). Read-only."""
from __future__ import annotations


class ReviewMixin:
    def versions_with_predictions(self) -> list[str]:
        """Model versions with at least one stored prediction, by name."""
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT model_version FROM predictions ORDER BY model_version")]

    def latest_prioritized_version(self) -> str | None:
        """The model version whose priorities were stored last, or None."""
        row = self.db.execute(
            "SELECT model_version FROM priorities ORDER BY created_at DESC, model_version "
            "LIMIT 1").fetchone()
        return row[0] if row else None
