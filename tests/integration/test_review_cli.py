"""`wb review` through click's CliRunner, with the real FiftyOne worker and MongoDB."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from review_cases import build_case  # noqa: E402

from workbench.cli import cli  # noqa: E402
from workbench.taxonomy import Taxonomy  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def ws(tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.flat(["ivory", "resin"]))
    build_case(ws, tmp_path / "images")
    return ws


def test_review_no_launch_json_prints_dataset_views_and_evaluations(ws):
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "review", "--no-launch", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["dataset"].startswith("wb-ws-") and out["samples"] == 5
    assert {
        "high-confidence-false-positives",
        "missed-ground-truth",
        "class-confusions",
        "worst-images",
        "duplicates-and-conflicts",
        "most-uncertain",
        "fixed-by-new-model",
        "broken-by-new-model",
    } == set(out["views"])
    assert out["evaluations"]["v1"] | {"images": 3} == {
        "mAP50": pytest.approx(out["evaluations"]["v1"]["mAP50"]),
        "tp": 1,
        "fp": 3,
        "fn": 2,
        "images": 3,
    }
    assert out["evaluations"]["v2"]["mAP50"] == pytest.approx(1.0)


def test_review_no_launch_text_lists_views(ws):
    result = CliRunner().invoke(
        cli, ["-w", str(ws.root), "review", "--no-launch", "--no-progress", "--model", "v1"]
    )
    assert result.exit_code == 0, result.output
    assert "Views are about model v1" in result.output
    assert "class-confusions (1)" in result.output


def test_review_unknown_model_fails_with_the_versions_it_knows(ws):
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "review", "--no-launch", "--model", "v9"])
    assert result.exit_code == 1
    assert "model version 'v9' has no predictions" in result.output
    assert "v1, v2" in result.output


def test_review_without_a_workspace_fails_cleanly(tmp_path):
    result = CliRunner().invoke(cli, ["-w", str(tmp_path / "none"), "review", "--no-launch"])
    assert result.exit_code == 1
    assert "no workspace at" in result.output
