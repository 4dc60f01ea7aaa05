"""The typed settings of a workspace, the one "choose one of" check, and the taxonomy's
explicit fallback for labels it does not know."""

from __future__ import annotations

import pytest

from workbench.detection.train import TrainConfig
from workbench.errors import InvalidChoice, WorkbenchError, check_choice
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    return Workspace.create(tmp_path / "ws", Taxonomy.default())


def test_check_choice_returns_the_value_and_names_every_option_when_wrong():
    assert check_choice("level", "species", ("species", "category")) == "species"
    with pytest.raises(InvalidChoice) as err:
        check_choice("level", "genus", ("species", "category"))
    assert str(err.value) == "unknown level 'genus'; choose one of: species, category"
    assert isinstance(err.value, WorkbenchError) and isinstance(err.value, ValueError)


def test_a_new_workspace_has_no_project_and_labels_at_the_model_level(ws, monkeypatch):
    monkeypatch.delenv("WB_LS_URL", raising=False)
    assert ws.project_id() is None
    assert ws.model_level() == "species"
    assert ws.project_level() == "species"
    assert ws.labelstudio_url() == "http://127.0.0.1:8080"
    monkeypatch.setenv("WB_LS_URL", "http://127.0.0.1:9999")
    assert ws.labelstudio_url() == "http://127.0.0.1:9999"


def test_the_project_keeps_the_level_it_was_created_with(ws):
    ws.set_project(7, "category")
    reopened = Workspace.open(ws.root)
    assert reopened.project_id() == 7
    assert reopened.project_level() == "category"
    assert reopened.model_level() == "species"
    reopened.set_project(None)
    assert Workspace.open(ws.root).project_id() is None
    assert Workspace.open(ws.root).project_level() == "species"


def test_train_config_for_a_workspace_takes_its_model_settings_under_overrides(ws):
    assert ws.model_settings() == {"level": "species"}
    ws.set("model", "backbone", "mobilenet_v3")
    ws.set("model", "image_size", 256)
    cfg = TrainConfig.for_workspace(ws, max_epochs=3, image_size=None)
    assert (cfg.backbone, cfg.image_size, cfg.max_epochs) == ("mobilenet_v3", 256, 3)
    assert TrainConfig.for_workspace(ws, image_size=128).image_size == 128


@pytest.mark.parametrize("unknown, expected", [("keep", "zebra"), ("none", None)])
def test_to_level_fallback_for_unknown_labels_is_explicit(unknown, expected):
    tax = Taxonomy.default()
    assert tax.to_level("zebra", "species", unknown=unknown) == expected
    with pytest.raises(WorkbenchError, match="unknown class 'zebra'"):
        tax.to_level("zebra", "species")
    # known labels map the same whatever the policy
    for policy in ("raise", "keep", "none"):
        assert tax.to_level(tax.categories[0], "species", unknown=policy) == tax.species_of(
            tax.categories[0]
        )
        assert tax.to_level(None, "species", unknown=policy) is None
        assert tax.to_level("background", "category", unknown=policy) == "background"


def test_to_level_rejects_an_unknown_policy():
    with pytest.raises(InvalidChoice, match="unknown-label policy"):
        Taxonomy.default().to_level("elephant", "species", unknown="drop")


def test_an_old_workbench_toml_keeps_its_adjudication_project(ws):
    """Before 0.1.x `wb dedup review` stored ``review_project_id``: it is still read, and
    writing moves it to ``adjudication_project_id``."""
    assert ws.adjudication_project_id() is None
    ws.set("labelstudio", "review_project_id", 7)  # as 0.1.0 wrote it
    assert "review_project_id = 7" in (ws.root / "workbench.toml").read_text()
    old = Workspace.open(ws.root)
    assert old.adjudication_project_id() == 7
    old.set_adjudication_project(9)
    moved = Workspace.open(ws.root)
    assert moved.adjudication_project_id() == 9
    assert moved.get("labelstudio", "adjudication_project_id") == 9
    assert moved.get("labelstudio", "review_project_id") is None
    moved.set_adjudication_project(None)
    assert Workspace.open(ws.root).adjudication_project_id() is None


def test_a_setting_saved_by_another_process_is_kept_when_this_one_saves(ws):
    """`wb ls start` saves the server's URL while a `wb push` (opened before) records its
    new project: each re-reads the file under the settings lock, so both changes stay."""
    push = Workspace.open(ws.root)  # opened first, holds the old settings
    ls_start = Workspace.open(ws.root)
    ls_start.set("labelstudio", "url", "http://127.0.0.1:8123")
    push.set_project(7, "species")
    push.set_model_settings(image_size=256)
    again = Workspace.open(ws.root)
    assert again.labelstudio_url() == "http://127.0.0.1:8123"
    assert again.project_id() == 7 and again.model_settings()["image_size"] == 256
    ls_start.set_adjudication_project(9)  # and the other way round
    again = Workspace.open(ws.root)
    assert (again.project_id(), again.adjudication_project_id()) == (7, 9)
