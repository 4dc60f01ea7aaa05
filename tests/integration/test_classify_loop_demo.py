"""The classifier in the loop on the demo data, through `wb`: train a tiny binary
classifier with --predict (its answers stored for every image), then rank with the
disagreement signal against a registered (untrained) detector; real torch both sides."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from workbench.backend.tiny_models import register_untrained_model
from workbench.cli import cli

pytestmark = pytest.mark.integration
torch.set_num_threads(1)


def test_train_with_predict_then_prioritize_by_disagreement(demo_data, workspace_factory):
    ws = workspace_factory()
    run = CliRunner()
    w = ["-w", str(ws.root)]
    ingest = run.invoke(cli, [*w, "ingest", str(demo_data / "images"), "--format", "folders"])
    assert ingest.exit_code == 0, ingest.output
    with ws.open_catalog() as catalog:
        active = catalog.images(status="active")
        detector = register_untrained_model(
            ws, catalog, ws.taxonomy.classes("category"), image_size=64, promote=True
        )
    r = run.invoke(
        cli,
        [
            *w,
            "classify",
            "train",
            "--positive",
            "elephant_ivory,pangolin",
            "--negatives",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--image-size",
            "64",
            "--predict",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    trained = json.loads(r.stdout)
    assert trained["classes"] == ["elephant_ivory+pangolin", "other"]
    assert trained["predict"]["predicted"] == len(active)
    classifier = trained["version"]
    with ws.open_catalog() as catalog:
        answers = catalog.classifications(classifier)
    assert sorted(answers) == sorted(im.id for im in active)
    again = run.invoke(cli, [*w, "classify", "predict", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["predicted"] == 0

    r = run.invoke(
        cli,
        [
            *w,
            "prioritize",
            "--signal",
            "uncertainty+disagreement",
            "--batch",
            "5",
            "--no-labelstudio",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    batch = json.loads(r.stdout)
    assert len(batch) == 5
    assert all(e["components"]["classifier"] == classifier for e in batch)
    assert all(0.0 <= e["uncertainty"] <= 1.0 for e in batch)
    with ws.open_catalog() as catalog:
        ranked = catalog.priorities(detector)
    assert len(ranked) == len(active)
    # the classifier is never the detector `wb serve` would run
    served = run.invoke(cli, [*w, "serve", "--version", classifier])
    assert served.exit_code == 1 and "is a 'classify' model" in served.output
