"""Connection, transactions and migrations. The catalog is the only code that speaks SQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..errors import WorkspaceError
from .schema import MIGRATIONS


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def chunks(items: list, size: int = 500) -> Iterator[list]:
    """Slices of ``items`` small enough for SQLite's limit on bound parameters."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


class CatalogCore:
    """SQLite in WAL mode; ``atomic()`` nests as savepoints (sqlite-utils style)."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.db = conn
        self._depth = 0
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path | str, read_only: bool = False):
        path = Path(path)
        if read_only and not path.exists():
            raise WorkspaceError(f"no catalog at {path}; run `wb init` first")
        try:
            if read_only:
                conn = sqlite3.connect(
                    f"file:{path}?mode=ro",
                    uri=True,
                    timeout=30,
                    check_same_thread=False,
                    isolation_level=None,
                )
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    path, timeout=30, check_same_thread=False, isolation_level=None
                )
        except sqlite3.Error as exc:
            raise WorkspaceError(f"cannot open catalog {path}: {exc}") from None
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        cat = cls(path, conn)
        if not read_only:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            cat._migrate()
        return cat

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """A transaction; nested calls become savepoints."""
        with self._lock:
            name = f"sp{self._depth}"
            if self._depth == 0:
                self.db.execute("BEGIN IMMEDIATE")
            else:
                self.db.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self.db
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self.db.execute("ROLLBACK")
                else:
                    self.db.execute(f"ROLLBACK TO {name}")
                    self.db.execute(f"RELEASE {name}")
                raise
            else:
                self._depth -= 1
                if self._depth == 0:
                    self.db.execute("COMMIT")
                else:
                    self.db.execute(f"RELEASE {name}")

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {r[0] for r in self.db.execute("SELECT version FROM schema_migrations")}
        for version, fn in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            with self.atomic() as db:
                fn(db)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, fn.__name__, now_iso()),
                )

    @property
    def schema_version(self) -> int:
        row = self.db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return row[0] or 0

    # ---- meta ------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str | None) -> None:
        with self.atomic() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
