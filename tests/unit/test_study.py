"""`wb study`: grid parsing and expansion, bad grids, resume bookkeeping, the classifier's
per-epoch checkpoint, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from workbench.catalog.records import ImageRecord
from workbench.classify.config import ClassifyConfig
from workbench.classify.train import CHECKPOINT, train_classifier
from workbench.cli import cli
from workbench.detection.registry import Registry
from workbench.study import run as study_run
from workbench.study.grid import GridError, parse_grid, read_grid
from workbench.study.report import study_rows, write_reports

pytestmark = pytest.mark.unit
torch.set_num_threads(1)

CLASSIFY = {
    "task": "classify",
    "settings": {"epochs": 1, "image_size": 64},
    "axes": {"regimen": ["transfer", "combi"], "negatives": [False, True]},
}


def test_grid_expands_every_combination_first_axis_slowest():
    cells = parse_grid(CLASSIFY, "s").cells()
    assert [c.values for c in cells] == [
        {"regimen": "transfer", "negatives": False},
        {"regimen": "transfer", "negatives": True},
        {"regimen": "combi", "negatives": False},
        {"regimen": "combi", "negatives": True},
    ]
    assert cells[3].settings == {
        "epochs": 1,
        "image_size": 64,
        "regimen": "combi",
        "negatives": True,
    }
    assert cells[0].label == "regimen=transfer negatives=no"
    assert len({c.key for c in cells}) == 4


def test_a_cell_keeps_its_key_when_the_grid_grows_and_changes_it_with_a_setting():
    before = {c.label: c.key for c in parse_grid(CLASSIFY, "s").cells()}
    grown = {**CLASSIFY, "axes": {**CLASSIFY["axes"], "regimen": ["transfer", "combi", "scratch"]}}
    after = {c.label: c.key for c in parse_grid(grown, "s").cells()}
    assert all(after[label] == key for label, key in before.items()) and len(after) == 6
    longer = {**CLASSIFY, "settings": {"epochs": 2, "image_size": 64}}
    assert not set(before.values()) & {c.key for c in parse_grid(longer, "s").cells()}


@pytest.mark.parametrize(
    "grid, message",
    [
        (
            {**CLASSIFY, "axes": {"optimiser": ["adam"]}},
            "'optimiser' is not a classify setting; allowed: backbone, regimen",
        ),
        ({**CLASSIFY, "axes": {"loss": ["ce", "asl"]}}, "'loss' is not a classify setting"),
        (
            {**CLASSIFY, "axes": {"regimen": ["transfer", "warm"]}},
            "regimen = 'warm' for classify: must be one of: transfer, scratch, combi",
        ),
        (
            {**CLASSIFY, "axes": {"backbone": ["lenet"]}},
            "must be one of: efficientnet_lite0, alexnet",
        ),
        ({**CLASSIFY, "axes": {"negatives": ["maybe"]}}, "must be true or false"),
        ({**CLASSIFY, "axes": {}}, "empty grid (no [axes])"),
        ({"task": "classify"}, "empty grid"),
        ({**CLASSIFY, "axes": {"regimen": []}}, "axis 'regimen' has no values"),
        (
            {**CLASSIFY, "task": "segment"},
            "task 'segment' is not known; set task = one of: detect, classify",
        ),
        ({"settings": {}, "axes": {"seed": [0, 1]}}, "task None is not known"),
        ({**CLASSIFY, "seeds": 3}, "unknown key(s) seeds"),
        ({**CLASSIFY, "settings": {"regimen": "combi"}}, "regimen is both a setting and an axis"),
        (
            {"axes": {"task": ["detect", "classify"], "per_species": [True]}},
            "'per_species' is not a classify setting",
        ),
        (
            {"task": "detect", "axes": {"loss": ["ce"]}, "test_sets": {"ood": "x"}},
            'format = "coco"',
        ),
    ],
)
def test_bad_grids_say_what_is_allowed(grid, message):
    with pytest.raises(GridError) as err:
        parse_grid(grid, "s")
    assert message in str(err.value)


def test_the_detection_study_grid_shipped_in_docs_parses():
    docs = Path(__file__).resolve().parents[2] / "docs" / "studies"
    detect = read_grid(docs / "detection.toml").cells()
    assert {c.task for c in detect} == {"detect"} and len(detect) == 4
    assert {(c.values["loss"], c.values["per_species"]) for c in detect} == {
        ("ce", False),
        ("ce", True),
        ("asl", False),
        ("asl", True),
    }
    classify = read_grid(docs / "classifier.toml").cells()
    assert {c.values["regimen"] for c in classify} == {"transfer", "scratch", "combi"}
    assert {c.values["negatives"] for c in classify} == {False, True}


def _register_fake(ws, catalog, tag) -> str:
    """A registered version as a cell's training leaves it (weights of a real network)."""
    weights = Path(ws.root) / "w.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), weights)
    mv = Registry.of(ws, catalog).register(
        weights, {}, ["a", "b"], "category", {"study_cell": tag}, {}, task="classify"
    )
    return mv.version


def test_rerun_skips_done_cells_and_adopts_a_version_registered_before_a_kill(
    workspace_factory, monkeypatch
):
    ws = workspace_factory()
    grid = parse_grid({**CLASSIFY, "axes": {"regimen": ["transfer", "scratch", "combi"]}}, "s")
    trained, crash = [], {"at": "regimen=scratch"}

    def train(ws_, catalog, cell, tag, run_dir, emit):
        trained.append(cell.label)
        version = _register_fake(ws_, catalog, tag)
        if cell.label == crash["at"]:
            raise KeyboardInterrupt  # killed after registering, before state.json said so
        return [version]

    monkeypatch.setattr(study_run, "_train_classifier", train)
    monkeypatch.setattr(
        study_run, "_score_classifier", lambda ws_, c, v, g: [{"set": "x", "accuracy": 0.5}]
    )
    with ws.open_catalog() as catalog:
        with pytest.raises(KeyboardInterrupt):
            study_run.run_study(ws, catalog, grid)
        crash["at"] = None
        state = study_run.run_study(ws, catalog, grid)
        versions = [m.version for m in Registry.of(ws, catalog).list()]
    assert trained == ["regimen=transfer", "regimen=scratch", "regimen=combi"]
    assert sorted(versions) == ["v001", "v002", "v003"]  # nothing trained twice
    assert [r["versions"][0]["version"] for r in state["cells"].values()] == versions
    assert all(r["status"] == "done" for r in state["cells"].values())
    rows = study_rows(grid, state)
    files = write_reports(study_run.study_dir(ws, "s"), rows, "s")
    assert Path(files["chart"]).read_bytes()[:4] == b"\x89PNG"
    assert "regimen=combi | v003 | 0.500" in Path(files["md"]).read_text()


def _tiny_images(root: Path, catalog) -> None:
    for label, colour in (("elephant_ivory", (230, 220, 200)), ("non_wildlife", (200, 30, 40))):
        (root / label).mkdir(parents=True)
        for i in range(8):
            path = root / label / f"{i}.png"
            shade = tuple(max(0, c - 12 * i) for c in colour)
            Image.new("RGB", (48, 40), shade).save(path)
            catalog.add_image(ImageRecord(id=None, path=str(path), label=label))


def test_an_interrupted_classifier_resumes_and_ends_as_an_uninterrupted_run(
    workspace_factory, tmp_path
):
    # combi: 1 last-layer epoch, then all layers; interrupted mid-way through the second
    # phase, so the optimizer and the shuffling order must come back from the checkpoint
    config = ClassifyConfig(
        positive=["elephant_ivory"],
        regimen="combi",
        epochs=3,
        head_epochs=1,
        image_size=64,
        batch_size=4,
        patience=10,
        seed=3,
    )
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        _tiny_images(tmp_path / "img", catalog)
        clean = train_classifier(ws, catalog, config, promote_first=False)

        def stop_after_two(done, total):
            if done == 2:
                raise KeyboardInterrupt

        run_dir = tmp_path / "run"
        with pytest.raises(KeyboardInterrupt):
            train_classifier(ws, catalog, config, stop_after_two, run_dir=run_dir)
        assert (run_dir / CHECKPOINT).is_file()
        seen = []
        resumed = train_classifier(
            ws,
            catalog,
            config,
            lambda d, t: seen.append(d),
            run_dir=run_dir,
            extra_metrics={"study_cell": "s/k"},
        )
    assert seen == [3]  # only the last epoch ran again
    assert not run_dir.exists()
    assert resumed.metrics["study_cell"] == "s/k"
    assert resumed.metrics["history"] == clean.metrics["history"]
    a = torch.load(clean.weights_path, weights_only=True)
    b = torch.load(resumed.weights_path, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_other_settings_is_refused(workspace_factory, tmp_path):
    config = ClassifyConfig(positive=["elephant_ivory"], epochs=2, image_size=64, batch_size=4)
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        _tiny_images(tmp_path / "img", catalog)

        def stop(done, total):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train_classifier(ws, catalog, config, stop, run_dir=tmp_path / "run")
        other = ClassifyConfig(positive=["elephant_ivory"], epochs=3, image_size=64, batch_size=4)
        with pytest.raises(Exception, match="of another classifier run"):
            train_classifier(ws, catalog, other, run_dir=tmp_path / "run")


def test_cli_study_run_then_show(workspace_factory, tmp_path, monkeypatch):
    ws = workspace_factory()
    monkeypatch.setattr(
        study_run,
        "_train_classifier",
        lambda ws_, catalog, cell, tag, run_dir, emit: [_register_fake(ws_, catalog, tag)],
    )
    monkeypatch.setattr(
        study_run,
        "_score_classifier",
        lambda ws_, c, v, g: [{"set": "catalog-test", "accuracy": 0.75, "f_score": 0.5}],
    )
    grid = tmp_path / "mini.toml"
    grid.write_text('task = "classify"\n[axes]\nregimen = ["transfer", "scratch"]\n')
    run = CliRunner()
    w = ["-w", str(ws.root)]
    r = run.invoke(cli, [*w, "study", "show", str(grid)])
    assert r.exit_code == 1 and "study mini has not run yet" in r.output
    r = run.invoke(cli, [*w, "study", "run", str(grid)])
    assert r.exit_code == 0, r.output
    assert "regimen=scratch" in r.output and "catalog-test f_score" in r.output
    assert "wb models promote VERSION" in r.output
    r = run.invoke(cli, [*w, "study", "show", str(grid), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["rows"]
    assert [(x["version"], x["status"]) for x in rows] == [("v001", "done"), ("v002", "done")]
    with ws.open_catalog() as catalog:
        assert catalog.promoted_model(task="classify") is None  # a study never promotes


def test_cli_study_run_refuses_an_unknown_axis(workspace_factory, tmp_path):
    ws = workspace_factory()
    grid = tmp_path / "bad.toml"
    grid.write_text('task = "classify"\n[axes]\noptimiser = ["sgd"]\n')
    r = CliRunner().invoke(cli, ["-w", str(ws.root), "study", "run", str(grid)])
    assert r.exit_code == 1
    assert "'optimiser' is not a classify setting; allowed: backbone" in r.output


def test_a_detection_cell_is_retrain_with_its_loss_and_no_promotion(workspace_factory):
    ws = workspace_factory()
    grid = parse_grid(
        {
            "task": "detect",
            "settings": {"backbone": "mobilenet_v3", "epochs": 3},
            "axes": {"loss": ["ce", "asl"], "per_species": [False, True]},
        },
        "d",
    )
    options = [study_run.detect_options(ws, c) for c in grid.cells()]
    assert [(o.train.loss, o.per_species) for o in options] == [
        ("ce", False),
        ("ce", True),
        ("asl", False),
        ("asl", True),
    ]
    assert {o.train.max_epochs for o in options} == {3}
    assert all(o.promote == "never" and {"pull", "predict", "refresh"} <= o.skip for o in options)


def test_a_test_folder_of_a_class_no_cell_has_fails_before_any_training(
    workspace_factory, tmp_path, monkeypatch
):
    ws = workspace_factory()
    (tmp_path / "ood" / "unicorn").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "ood" / "unicorn" / "1.png")
    grid = parse_grid(
        {**CLASSIFY, "settings": {"positive": "elephant_ivory"}, "test_sets": {"ood": "ood"}},
        "s",
        tmp_path / "grid.toml",
    )
    monkeypatch.setattr(study_run, "_train_classifier", lambda *a: pytest.fail("trained"))
    with ws.open_catalog() as catalog, pytest.raises(Exception, match="unicorn"):
        study_run.run_study(ws, catalog, grid)
