"""`wb status` shows what the last `wb pull` changed (issue 15, item 8b): ``pull`` records
its counts in the catalog's meta table (one home), `wb status` and `--json` read them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.labelstudio.project import Project
from workbench.labelstudio.pull import last_pull, pull

pytestmark = pytest.mark.unit


class NoAnnotationsYet:
    """A Label Studio project with 7 tasks and nothing annotated."""

    def task_count(self, project_id):
        return 7

    def users(self):
        return {}

    def iter_tasks(self, project_id, **kw):
        return iter(())


def test_status_before_any_pull_says_so(workspace_factory):
    ws = workspace_factory()
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "status"])
    assert r.exit_code == 0, r.output
    assert "last pull: none yet (`wb pull` brings Label Studio's annotations in)" in r.output
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "status", "--json"])
    assert json.loads(r.output)["last_pull"] is None


def test_a_pull_is_recorded_and_status_shows_it(workspace_factory):
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        project = Project(NoAnnotationsYet(), SimpleNamespace(url="x"), 4, "species", ws.taxonomy)
        result = pull(project, catalog)
        recorded = last_pull(catalog)
    assert result.tasks == 7
    assert {k: recorded[k] for k in ("project_id", "tasks", "updated_images", "boxes")} == {
        "project_id": 4,
        "tasks": 7,
        "updated_images": 0,
        "boxes": 0,
    }
    assert recorded["disagreements"] == 0 and recorded["finished_at"].endswith("Z")
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "status"])
    assert r.exit_code == 0, r.output
    assert "last pull (" in r.output and "project 4): 0 images updated (0 boxes" in r.output
    assert "0 of 7 tasks annotated, 0 disagreements" in r.output
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "status", "--json"])
    assert json.loads(r.output)["last_pull"] == recorded
