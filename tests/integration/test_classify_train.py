"""A tiny classifier trained on the demo data through `wb`, then evaluated on the
catalog's test split and a folders-per-class test set (real torch, real weights file)."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from workbench.cli import cli

pytestmark = pytest.mark.integration


def test_train_then_evaluate_a_binary_classifier_on_demo_data(
    demo_data, workspace_factory, tmp_path
):
    ws = workspace_factory()
    run = CliRunner()
    w = ["-w", str(ws.root)]
    assert (
        run.invoke(cli, [*w, "ingest", str(demo_data / "images"), "--format", "folders"]).exit_code
        == 0
    )
    r = run.invoke(
        cli,
        [
            *w,
            "classify",
            "train",
            "--positive",
            "elephant_ivory",
            "--negatives",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--image-size",
            "96",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    trained = json.loads(r.output[r.output.index("{") :])
    assert trained["task"] == "classify" and trained["classes"] == ["elephant_ivory", "other"]
    test = tmp_path / "test"
    for name in ("elephant_ivory", "non_wildlife"):
        shutil.copytree(demo_data / "images" / name, test / name)
    r = run.invoke(cli, [*w, "classify", "evaluate", "--test-set", f"demo={test}", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output[r.output.index("{") :])
    sets = {s["set"]: s for s in result["sets"]}
    n_demo = sum(1 for _ in test.rglob("*.jpg"))
    assert sets["demo"]["n"] == n_demo and "catalog-test" in sets
    assert all(0 <= s["accuracy"] <= 1 and s["parameters"] > 1_000_000 for s in sets.values())
    assert all(open(s["confusion_png"], "rb").read(4) == b"\x89PNG" for s in sets.values())
    # the classifier is promoted for its task only: no detector appears promoted
    with ws.open_catalog() as catalog:
        assert catalog.promoted_model() is None
        assert catalog.promoted_model(task="classify").version == trained["version"]
    table = run.invoke(cli, [*w, "models"])
    assert "classify" in table.output
    # a test folder named after no class (binary: any known class is "other"): named
    (test / "unicorn").mkdir()
    r = run.invoke(cli, [*w, "classify", "evaluate", "--test-set", f"demo={test}"])
    assert r.exit_code == 1 and "unicorn" in r.output
