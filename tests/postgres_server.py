"""ONE real PostgreSQL per test session (Debian's ``postgresql`` package), started through
the same code as `wb ls db start` and stopped by PID at the end (loaded by
tests/conftest.py as a plugin). Tests that need it skip, saying why, when the package
is missing.

As root the server runs as user ``postgres``, so its folders live in a fresh folder
under the system's temporary folder (pytest's own is closed to other users)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class PostgresServer:
    url: str  # postgresql://wb:<password>@127.0.0.1:<port>/labelstudio
    port: int
    pid: int
    services_dir: Path
    log: Path
    bin_dir: Path
    password: str

    def sql(self, query: str) -> list[str]:
        """Rows of ``query`` (one line each, columns joined by |), through psql."""
        import os
        import subprocess

        done = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "wb",
                "-d",
                "labelstudio",
                "-tAc",
                query,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        return [line for line in done.stdout.splitlines() if line]


@pytest.fixture(scope="session")
def postgresql_installed() -> Path:
    """The PostgreSQL programs' folder; skips, saying why, when the package is missing."""
    from workbench.labelstudio import postgres

    try:
        bin_dir = postgres.find_bin_dir()
        postgres._server_uid()
    except postgres.PostgresNotInstalled as exc:
        pytest.skip(f"PostgreSQL not installed here: {exc}")
    return bin_dir


@pytest.fixture
def reachable_dir():
    """A fresh folder the server's user may enter (removed afterwards)."""
    root = Path(tempfile.mkdtemp(prefix="wb-test-pg-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgresql(postgresql_installed):
    from workbench.labelstudio import postgres
    from workbench.services import free_port

    root = Path(tempfile.mkdtemp(prefix="wb-test-pg-"))
    root.chmod(0o755)  # the server's user must enter it
    state = None
    try:
        state, _ = postgres.start(root, port=free_port(), timeout=120)
        yield PostgresServer(
            url=postgres.local_url(root).url(),
            port=state.port,
            pid=state.pid,
            services_dir=root,
            log=Path(state.log),
            bin_dir=postgresql_installed,
            password=postgres.password(root),
        )
    finally:
        if state is not None:
            postgres.stop(root)
        shutil.rmtree(root, ignore_errors=True)
