"""Shared fixtures. Tests that need ../shared skip with the reason when it is absent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("WB_SHARED_DIR", REPO.parent / "shared"))

# the real Label Studio fixture (`label_studio`), one server for every tier that needs it
pytest_plugins = ["labelstudio_server", "postgres_server"]

# Keep FiftyOne and friends quiet and local, whatever a test imports.
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")


def pytest_collection_modifyitems(config, items):
    """Tests without a tier marker are unit tests by their folder."""
    for item in items:
        path = str(item.fspath)
        marks = {m.name for m in item.iter_markers()}
        if not marks & {"unit", "integration", "browser", "fault"}:
            if "/fault/" in path:
                item.add_marker(pytest.mark.fault)
            elif "/integration/" in path:
                item.add_marker(pytest.mark.integration)
            elif "/e2e/" in path:
                item.add_marker(pytest.mark.browser)
            else:
                item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is not present at {SHARED}: real-photo tests need it")
    return SHARED


@pytest.fixture(scope="session")
def kangaroo_dir(shared_dir) -> Path:
    d = shared_dir / "data" / "kangaroo"
    if not (d / "images").is_dir() or not (d / "annots").is_dir():
        pytest.skip(f"kangaroo VOC data set not found under {d}")
    return d


class ModuleTmp:
    """``tmp_path_factory`` for one test module: what it makes is removed when the module
    ends, unless a test failed meanwhile (then it stays, to be looked at). pytest itself
    keeps every factory folder until the session ends, and a whole suite of registered
    models and workspaces filled a CI disk."""

    def __init__(self, factory):
        self._factory = factory
        self.made: list[Path] = []

    def mktemp(self, name: str, numbered: bool = True) -> Path:
        path = self._factory.mktemp(name, numbered=numbered)
        self.made.append(path)
        return path


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request):
    """Folders shared by one module's tests, removed when the module passes."""
    tmp = ModuleTmp(tmp_path_factory)
    failed_before = request.session.testsfailed
    yield tmp
    if request.session.testsfailed == failed_before:
        for path in tmp.made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The built-in demo data set, generated once per test session (read-only for tests)."""
    from workbench.demo_data import generate_demo_data

    out = tmp_path_factory.mktemp("demo-data")
    generate_demo_data(out, seed=0)
    return out


@pytest.fixture
def workspace_factory(tmp_path):
    """Make workspaces: ``ws = workspace_factory(classes=["kangaroo"])``."""
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    made = []

    def make(classes: list[str] | None = None, name: str = "ws") -> Workspace:
        tax = Taxonomy.flat(classes) if classes else Taxonomy.default()
        ws = Workspace.create(tmp_path / f"{name}{len(made)}", tax)
        made.append(ws)
        return ws

    return make
