"""The workspace folder and its settings file, ``workbench.toml``.

Layout (see docs/operations.md): workbench.toml, taxonomy.toml, catalog.sqlite,
workbench.lock, models/, reports/, services/, field/photos/ (photos the field app
received).
"""

from __future__ import annotations

import os
import tomllib
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from .errors import WorkspaceError, check_choice
from .fsutil import atomic_write_text, remove_leftover_temps
from .lock import LOCK_NAME, WorkspaceLock, settings_lock
from .taxonomy import Taxonomy

CONFIG_NAME = "workbench.toml"
TAXONOMY_NAME = "taxonomy.toml"
CATALOG_NAME = "catalog.sqlite"
DEFAULT_WORKSPACE = "workspace"
DEFAULT_LEVEL = "species"
DEFAULT_LS_URL = "http://127.0.0.1:8080"
# `wb dedup review` became `wb dedup adjudicate` in 0.1.x; its project id was stored here.
# Read until workbench 0.2, moved to adjudication_project_id when written.
OLD_ADJUDICATION_KEY = "review_project_id"
#: the [model] keys a workspace may pin; unset ones take the code's defaults (TrainConfig)
MODEL_SETTINGS = ("backbone", "level", "image_size")


def resolve_workspace_path(value: str | os.PathLike | None) -> Path:
    if value is None:
        value = os.environ.get("WB_WORKSPACE") or DEFAULT_WORKSPACE
    return Path(value).expanduser().resolve()


def workspace_lock(root: Path | str, command: str) -> WorkspaceLock:
    """The one-writer lock of the workspace at ``root`` (``workbench.lock``; see
    ``workbench.lock``), for ``command`` (named to a second writer). For a workspace
    that exists: ``Workspace.lock``; this one also serves `wb init`, before it does."""
    return WorkspaceLock(Path(root) / LOCK_NAME, command)


def discard_unmade(root: Path | str) -> None:
    """Remove the folder a failed `wb init` made for its lock, when that lock file is
    all it holds (a refused init leaves nothing behind). A lock file is otherwise never
    deleted; here only another init of the same new folder could be waiting on it."""
    root = Path(root)
    try:
        if [p.name for p in root.iterdir()] == [LOCK_NAME]:
            (root / LOCK_NAME).unlink()
            root.rmdir()
    except OSError:
        pass


class Workspace:
    """One workspace folder. Settings are read at open and written atomically."""

    def __init__(self, root: Path, config: dict[str, Any]):
        self.root = root
        self.config = config
        self._taxonomy: Taxonomy | None = None

    # ---- lifecycle ------------------------------------------------------
    @classmethod
    def create(cls, root: Path, taxonomy: Taxonomy, exist_ok: bool = False) -> Workspace:
        root = Path(root).resolve()
        if (root / CONFIG_NAME).exists():
            if not exist_ok:
                raise WorkspaceError(
                    f"a workspace already exists at {root}; use it, or choose another --workspace"
                )
            return cls.open(root)
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("models", "reports", "services"):
            (root / sub).mkdir(exist_ok=True)
        atomic_write_text(root / TAXONOMY_NAME, tomli_w.dumps(taxonomy.to_dict()))
        config = {
            "workspace": {
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "taxonomy": TAXONOMY_NAME,
            },
            "labelstudio": {"url": DEFAULT_LS_URL},
            # backbone and image size: the code's defaults (TrainConfig) unless set here;
            # `wb retrain` says which it used and why
            "model": {"level": DEFAULT_LEVEL},
        }
        ws = cls(root, config)
        ws.save()
        from .catalog import Catalog  # creates the schema

        Catalog.open(ws.catalog_path).close()
        return ws

    @classmethod
    def open(cls, root: Path | str) -> Workspace:
        root = Path(root).resolve()
        cfg = root / CONFIG_NAME
        if not cfg.exists():
            raise WorkspaceError(
                f"no workspace at {root} (no {CONFIG_NAME}). Run `wb --workspace {root} init` "
                "first, or point --workspace / WB_WORKSPACE at an existing one."
            )
        try:
            config = tomllib.loads(cfg.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise WorkspaceError(f"{cfg} is not valid TOML: {exc}") from None
        return cls(root, config)

    def save(self) -> None:
        remove_leftover_temps(self.root)  # what a killed writer left of this file or others
        atomic_write_text(self.root / CONFIG_NAME, tomli_w.dumps(self.config))

    @contextmanager
    def _editing(self):
        """One change of the settings: under ``settings_lock``, re-read the file (another
        `wb` may have saved since this one opened it), change it, save. So a setting one
        process writes is never lost to another's older copy."""
        with settings_lock(self.root):
            try:
                self.config = tomllib.loads((self.root / CONFIG_NAME).read_text())
            except (OSError, tomllib.TOMLDecodeError):
                pass  # not written yet, or broken: keep what this process holds
            yield self.config
            self.save()

    # ---- settings -------------------------------------------------------
    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.config.get(section, {}).get(key, default)

    def set(self, section: str, key: str, value: Any) -> None:
        """Set one value and save. ``None`` removes the key (TOML has no null)."""
        with self._editing() as config:
            sec = config.setdefault(section, {})
            if value is None:
                sec.pop(key, None)
            else:
                sec[key] = value

    # ---- typed settings (read these, not get() with a string) ----------
    def model_level(self) -> str:
        """The label level models train at (``[model] level``)."""
        return self.get("model", "level") or DEFAULT_LEVEL

    def model_settings(self) -> dict[str, Any]:
        """The ``[model]`` settings this workspace pins (backbone, level, image size);
        keys it leaves unset are absent, so the code's defaults apply."""
        return {k: v for k in MODEL_SETTINGS if (v := self.get("model", k)) is not None}

    def set_model_settings(self, **settings: Any) -> None:
        """Pin ``[model]`` settings (backbone, level, image_size) and save once; None
        unpins one, so the code's default applies again."""
        for key in settings:
            check_choice("model setting", key, MODEL_SETTINGS)
        with self._editing() as config:
            sec = config.setdefault("model", {})
            for key, value in settings.items():
                if value is None:
                    sec.pop(key, None)
                else:
                    sec[key] = value

    def project_id(self) -> int | None:
        """The Label Studio project `wb push` created, or None before the first push."""
        pid = self.get("labelstudio", "project_id")
        return None if pid is None else int(pid)

    def project_level(self) -> str:
        """The level the Label Studio project labels at: the one it was created with,
        else the model's level."""
        return self.get("labelstudio", "project_level") or self.model_level()

    def set_project(
        self, project_id: int | None, level: str | None = None, *, external: bool = False
    ) -> None:
        """Remember the Label Studio project (None forgets it) and its level.
        ``external``: a project someone else set up (`wb push --project`): its label
        config is read, never rewritten."""
        with self._editing() as config:
            sec = config.setdefault("labelstudio", {})
            sec.pop("project_external", None)
            if project_id is None:
                sec.pop("project_id", None)
                sec.pop("project_level", None)
            else:
                sec["project_id"] = int(project_id)
                if level is not None:
                    sec["project_level"] = level
                if external:
                    sec["project_external"] = True

    def project_external(self) -> bool:
        """Whether the recorded project is someone else's (``[labelstudio]
        project_external``, set by `wb push --project`), not one `wb push` made."""
        return bool(self.get("labelstudio", "project_external", False))

    def label_map(self) -> dict[str, tuple[str, ...]]:
        """``[labelstudio.label_map]``: project label -> the model classes whose boxes it
        gets (a list, or one string, comma separated), in place of the label's own
        ``predicted_values``; {} when unset."""
        raw = self.get("labelstudio", "label_map", {})
        if not isinstance(raw, dict):
            raise WorkspaceError(
                "[labelstudio] label_map in workbench.toml must be a table of project label "
                '= ["class", ...], e.g. [labelstudio.label_map] Vehicle = ["car", "truck"]'
            )
        out = {}
        for label, value in raw.items():
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise WorkspaceError(
                    f"[labelstudio.label_map] {label!r} in workbench.toml must be a class name "
                    'or a list of them, e.g. Vehicle = ["car", "truck"]'
                )
            names = tuple(n.strip() for v in values for n in v.split(",") if n.strip())
            if names:
                out[label] = names
        return out

    def adjudication_project_id(self) -> int | None:
        """The Label Studio project `wb dedup adjudicate` created (``[labelstudio]
        adjudication_project_id``; before 0.1.x it was ``review_project_id``, still read),
        or None before the first push."""
        sec = self.config.get("labelstudio", {})
        pid = sec.get("adjudication_project_id", sec.get(OLD_ADJUDICATION_KEY))
        return None if pid is None else int(pid)

    def set_adjudication_project(self, project_id: int | None) -> None:
        """Remember the adjudication project (None forgets it) under its current key; an
        old ``review_project_id`` is dropped, so the file names the project once."""
        with self._editing() as config:
            sec = config.setdefault("labelstudio", {})
            sec.pop(OLD_ADJUDICATION_KEY, None)
            if project_id is None:
                sec.pop("adjudication_project_id", None)
            else:
                sec["adjudication_project_id"] = int(project_id)

    def allowed_image_hosts(self) -> tuple[str, ...]:
        """Hosts `wb serve` may fetch task images from besides Label Studio's own
        (``[serve] allowed_image_hosts``: names, ``host:port``, addresses, networks);
        empty when unset. Loopback, link-local and private addresses need an entry."""
        value = self.get("serve", "allowed_image_hosts", [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise WorkspaceError(
                f"[serve] allowed_image_hosts in {self.root / CONFIG_NAME} must be a list of "
                'host names, e.g. ["images.example.com", "10.0.0.0/8"]'
            )
        return tuple(value)

    def field_keep_location(self) -> bool:
        """Whether field photos keep their GPS position (``[field] keep_location``; off
        unless the workspace opts in: the position is removed before a photo is stored)."""
        return bool(self.get("field", "keep_location", False))

    def labelstudio_url(self) -> str:
        """Label Studio's URL: ``WB_LS_URL``, else ``[labelstudio] url``, else the default."""
        return os.environ.get("WB_LS_URL") or self.get("labelstudio", "url") or DEFAULT_LS_URL

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

    @property
    def field_photos_dir(self) -> Path:
        """Where the field app stores photos (named by content hash), inside the workspace."""
        return self._dir("field/photos")

    def _dir(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def lock(self, command: str) -> WorkspaceLock:
        """The one-writer lock (``with ws.lock("wb push"): ...``)."""
        return workspace_lock(self.root, command)

    def open_catalog(self):
        from .catalog import Catalog

        return Catalog.open(self.catalog_path)
