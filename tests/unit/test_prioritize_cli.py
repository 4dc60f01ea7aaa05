"""`wb prioritize` through click: --json, --show (table and HTML page), failures."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from prioritize_cases import VERSION, BrightnessModel, confident_and_unsure, register_model

from workbench.cli import cli
from workbench.images import open_image

pytestmark = pytest.mark.unit


@pytest.fixture
def ready(workspace_factory, tmp_path):
    """A workspace with a promoted model whose predictions are stored already (so the
    command never loads a real detector)."""
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        ids = confident_and_unsure(tmp_path, catalog)
        register_model(ws, catalog)
        todo = [i for k, i in ids.items() if k not in ("annotated", "excluded")]
        images = catalog.images(ids=todo)
        dets = BrightnessModel().predict([open_image(im.path) for im in images])
        catalog.store_predictions(
            VERSION, {im.id: [d.to_dict() for d in ds] for im, ds in zip(images, dets)}
        )
    return ws, ids, tmp_path


def run(ws, *args):
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), "prioritize", *args])


def test_json_lists_the_batch_most_uncertain_first(ready):
    ws, ids, tmp_path = ready
    res = run(ws, "--batch", "3", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [e["path"] for e in out] == [
        str((tmp_path / "img" / f"{n}.png").resolve()) for n in ("unsure", "middling", "fair")
    ]
    assert all(set(e) == {"path", "uncertainty", "components"} for e in out)
    assert [e["uncertainty"] for e in out] == sorted((e["uncertainty"] for e in out), reverse=True)
    assert out[0]["components"]["missed_product"] == 1.0
    with ws.open_catalog() as catalog:
        assert [r.selected for r in catalog.priorities(VERSION)] == [True, True, True, False]


def test_show_prints_the_components_and_writes_a_page_with_thumbnails(ready):
    ws, ids, _ = ready
    res = run(ws, "--show", "2", "--score", "entropy", "--aggregate", "sum", "--no-labelstudio")
    assert res.exit_code == 0, res.output
    assert "model v001: ranked 4 unannotated images" in res.output
    assert "Label Studio: left as it is (--no-labelstudio)" in res.output
    assert "first 2 in annotation order" in res.output and "missed" in res.output
    page = ws.reports_dir / "prioritize" / VERSION / "index.html"
    html = page.read_text()
    assert f"thumbs/{ids['unsure']}.jpg" in html and f"thumbs/{ids['middling']}.jpg" in html
    assert f"thumbs/{ids['sure']}.jpg" not in html
    assert "entropy" in html and "missed product" in html
    assert (page.parent / "thumbs" / f"{ids['unsure']}.jpg").stat().st_size > 0


def test_without_a_label_studio_project_it_says_push_sends_the_order(ready):
    ws, _, _ = ready
    res = run(ws)
    assert res.exit_code == 0, res.output
    assert "no project yet; `wb push` sends the tasks with these priorities" in res.output


def test_unknown_model_version_fails_with_the_known_ones(ready):
    ws, _, _ = ready
    res = run(ws, "--model", "v404")
    assert res.exit_code == 1
    assert "no model version 'v404'; known versions: v001" in res.output


def test_unknown_score_is_a_usage_error_listing_the_choices(ready):
    ws, _, _ = ready
    res = run(ws, "--score", "bald")
    assert res.exit_code == 2
    assert "'least_confidence', 'margin', 'entropy'" in res.output


def test_unreachable_label_studio_fails_but_keeps_the_priorities(ready, monkeypatch):
    ws, _, _ = ready
    ws.set("labelstudio", "project_id", 3)
    monkeypatch.setenv("WB_LS_TOKEN", "0" * 40)
    res = run(ws, "--ls-url", "http://127.0.0.1:9")
    assert res.exit_code == 1
    assert "Label Studio is not reachable at http://127.0.0.1:9" in res.output
    assert "The priorities are stored in the catalog" in res.output
    with ws.open_catalog() as catalog:
        assert len(catalog.priorities(VERSION)) == 4


FLAT = {"label": "elephant", "x1": 1, "y1": 1, "x2": 9, "y2": 9, "score": 0.12, "probs": {}}


def test_a_promoted_model_that_finds_nothing_is_named_in_one_warning(ready):
    """An older workspace: promoted before the rule, judged on its stored predictions."""
    ws, ids, _ = ready
    assert "finds nothing" not in run(ws, "--no-labelstudio").output  # 0.4-0.95 boxes: fine
    with ws.open_catalog() as catalog:
        todo = [i for k, i in ids.items() if k not in ("annotated", "excluded")]
        catalog.store_predictions(VERSION, {i: [FLAT] for i in todo})
    res = run(ws, "--no-labelstudio")
    assert res.exit_code == 0, res.output
    [line] = [ln for ln in res.output.splitlines() if "finds nothing" in ln]
    assert line.startswith(
        "warning: model v001 finds nothing (no box at or above the display floor 0.3 on 4 "
        "images, the highest at 0.12): its boxes are below the display floor 0.3, so tasks "
        "get none and the order rests on label signals alone. Train a better one"
    )
    assert "`wb models promote VERSION`" in line


def test_push_names_a_model_that_finds_nothing(ready, monkeypatch):
    import workbench.labelstudio as ls
    from workbench.labelstudio.push import PushResult

    ws, ids, _ = ready
    with ws.open_catalog() as catalog:
        todo = [i for k, i in ids.items() if k not in ("annotated", "excluded")]
        catalog.store_predictions(VERSION, {i: [FLAT] if i == ids["sure"] else [] for i in todo})
    monkeypatch.setattr(ls, "connect", lambda ws, url: (None, None))
    monkeypatch.setattr(
        ls,
        "push",
        lambda *a, **k: PushResult(1, "http://127.0.0.1:1/projects/1", "species", VERSION),
    )
    res = CliRunner().invoke(cli, ["--workspace", str(ws.root), "push"])
    assert res.exit_code == 0, res.output
    assert "warning: model v001 finds nothing (no box at or above the display floor 0.3" in (
        res.output
    )
    assert res.output.count("finds nothing") == 1


def test_a_promoted_model_that_scores_every_box_alike_is_named_too(ready):
    ws, ids, _ = ready
    alike = {**FLAT, "score": 0.5}
    with ws.open_catalog() as catalog:
        todo = [i for k, i in ids.items() if k not in ("annotated", "excluded")]
        catalog.store_predictions(VERSION, {i: [alike] * 3 for i in todo})
    res = run(ws, "--no-labelstudio")
    assert res.exit_code == 0, res.output
    assert (
        "warning: model v001 finds nothing (all 12 boxes on 4 images score between 0.50 and "
        "0.50: it does not tell objects apart): its boxes all score alike"
    ) in res.output


def test_promoting_a_model_that_finds_nothing_by_hand_says_so(ready):
    ws, ids, _ = ready
    (ws.models_dir / VERSION / "weights.pt").write_bytes(b"")  # promote checks it is there
    promote = ["--workspace", str(ws.root), "models", "promote", VERSION]
    res = CliRunner().invoke(cli, promote)
    assert res.exit_code == 0 and "finds nothing" not in res.output, res.output
    with ws.open_catalog() as catalog:
        todo = [i for k, i in ids.items() if k not in ("annotated", "excluded")]
        catalog.store_predictions(VERSION, {i: [FLAT] for i in todo})
    res = CliRunner().invoke(cli, [*promote, "--json"])
    assert res.exit_code == 0, res.output
    assert "warning: model v001 finds nothing (no box at or above the display floor 0.3" in (
        res.stderr
    )
    assert json.loads(res.stdout)["version"] == VERSION  # stdout stays JSON
