"""The workspace folder and its settings file, ``workbench.toml``.

Layout (see DESIGN.md): workbench.toml, taxonomy.toml, catalog.sqlite, models/,
reports/, services/.
"""
from __future__ import annotations

import os
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tomli_w

from .errors import WorkspaceError
from .fsutil import atomic_write_text
from .taxonomy import Taxonomy

CONFIG_NAME = "workbench.toml"
TAXONOMY_NAME = "taxonomy.toml"
CATALOG_NAME = "catalog.sqlite"
DEFAULT_WORKSPACE = "workspace"


def resolve_workspace_path(value: str | os.PathLike | None) -> Path:
    if value is None:
        value = os.environ.get("WB_WORKSPACE") or DEFAULT_WORKSPACE
    return Path(value).expanduser().resolve()


class Workspace:
    """One workspace folder. Settings are read at open and written atomically."""

    def __init__(self, root: Path, config: dict[str, Any]):
        self.root = root
        self.config = config
        self._taxonomy: Taxonomy | None = None

    # ---- lifecycle ------------------------------------------------------
    @classmethod
    def create(cls, root: Path, taxonomy: Taxonomy, exist_ok: bool = False) -> "Workspace":
        root = Path(root).resolve()
        if (root / CONFIG_NAME).exists():
            if not exist_ok:
                raise WorkspaceError(
                    f"a workspace already exists at {root}; use it, or choose another --workspace")
            return cls.open(root)
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("models", "reports", "services"):
            (root / sub).mkdir(exist_ok=True)
        atomic_write_text(root / TAXONOMY_NAME, tomli_w.dumps(taxonomy.to_dict()))
        config = {
            "workspace": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "taxonomy": TAXONOMY_NAME},
            "labelstudio": {"url": "http://127.0.0.1:8080"},
            # backbone and image size: the code's defaults (efficientnet_lite0, its 320 px)
            # unless set here; `wb retrain` says which it used and why
            "model": {"level": "species"},
        }
        ws = cls(root, config)
        ws.save()
        from .catalog import Catalog  # creates the schema

        Catalog.open(ws.catalog_path).close()
        return ws

    @classmethod
    def open(cls, root: Path | str) -> "Workspace":
        root = Path(root).resolve()
        cfg = root / CONFIG_NAME
        if not cfg.exists():
            raise WorkspaceError(
                f"no workspace at {root} (no {CONFIG_NAME}). Run `wb --workspace {root} init` "
                "first, or point --workspace / WB_WORKSPACE at an existing one.")
        try:
            config = tomllib.loads(cfg.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise WorkspaceError(f"{cfg} is not valid TOML: {exc}") from None
        return cls(root, config)

    def save(self) -> None:
        atomic_write_text(self.root / CONFIG_NAME, tomli_w.dumps(self.config))

    # ---- settings -------------------------------------------------------
    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.config.get(section, {}).get(key, default)

    def set(self, section: str, key: str, value: Any) -> None:
        """Set one value and save. ``None`` removes the key (TOML has no null)."""
        sec = self.config.setdefault(section, {})
        if value is None:
            sec.pop(key, None)
        else:
            sec[key] = value
        self.save()

    # ---- taxonomy -------------------------------------------------------
    @property
    def taxonomy(self) -> Taxonomy:
        if self._taxonomy is None:
            name = self.get("workspace", "taxonomy", TAXONOMY_NAME)
            self._taxonomy = Taxonomy.from_file(self.root / name)
        return self._taxonomy

    def set_taxonomy(self, taxonomy: Taxonomy) -> None:
        name = self.get("workspace", "taxonomy", TAXONOMY_NAME)
        atomic_write_text(self.root / name, tomli_w.dumps(taxonomy.to_dict()))
        self._taxonomy = taxonomy

    # ---- paths ----------------------------------------------------------
    @property
    def name(self) -> str:
        return self.root.name

    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG_NAME

    @property
    def models_dir(self) -> Path:
        return self._dir("models")

    @property
    def reports_dir(self) -> Path:
        return self._dir("reports")

    @property
    def services_dir(self) -> Path:
        return self._dir("services")

    def _dir(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def open_catalog(self):
        from .catalog import Catalog

        return Catalog.open(self.catalog_path)
