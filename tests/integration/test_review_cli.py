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
        "right-class-wrong-evidence",
        "likely-label-errors",
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


def test_explain_a_saved_view_then_review_shows_its_heatmaps(tmp_path):
    """`wb explain --view` reads the view in the FiftyOne worker and explains a real (tiny)
    model's boxes on its images; the next `wb review` attaches the heatmaps."""
    import torch

    from workbench.detection.registry import Registry
    from workbench.detection.synthetic import add_synthetic_images
    from workbench.detection.train import TrainConfig, build_model

    ws = Workspace.create(tmp_path / "ws", Taxonomy.flat(["red", "blue"]))
    with ws.open_catalog() as catalog:
        add_synthetic_images(catalog, tmp_path / "img", ["red", "blue"], 3)
        config = TrainConfig(
            backbone="mobilenet_v3", image_size=64, weights="none", rpn_post_nms_top_n_test=2
        )
        torch.manual_seed(0)
        model = build_model(config, ["red", "blue"])
        # boxes everywhere, so worst-images holds every image
        model.roi_heads.box_predictor.cls_score.bias.data[:] = torch.tensor([-3.0, 1.0, 1.0])
        torch.save(model.state_dict(), tmp_path / "w.pt")
        registry = Registry.of(ws, catalog)
        registry.promote(
            registry.register(
                tmp_path / "w.pt", config.to_dict(), ["red", "blue"], "species", {}, {}
            ).version
        )
    wb = lambda *a: CliRunner().invoke(cli, ["-w", str(ws.root), *a])  # noqa: E731

    early = wb("explain", "--view", "worst-images")
    assert early.exit_code == 1 and "no review dataset yet" in early.output

    first = json.loads(wb("review", "--no-launch", "--json").stdout)
    assert first["explained_images"] == 0 and first["view_samples"]["worst-images"] == 3

    run = wb("explain", "--view", "worst-images", "--json")
    assert run.exit_code == 0, run.output
    out = json.loads(run.stdout)
    assert len(out["images"]) == 3 and out["detections"]
    assert "reading saved view 'worst-images' from the review dataset" in run.stderr

    again = json.loads(wb("review", "--no-launch", "--json").stdout)
    assert again["explained_images"] == 3
    # which of them land in right-class-wrong-evidence: test_review_dataset.py, exactly
    assert "right-class-wrong-evidence" in again["views"]
