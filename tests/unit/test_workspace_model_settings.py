"""Pinning a workspace's [model] settings: what `wb demo` writes and `wb retrain` reads."""

from __future__ import annotations

import pytest

from workbench.errors import InvalidChoice
from workbench.taxonomy import Taxonomy
from workbench.workspace import Workspace


def test_model_settings_are_pinned_and_unpinned_in_one_save(tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    ws.set_model_settings(backbone="mobilenet_v3", image_size=256, level="category")
    again = Workspace.open(ws.root)
    assert again.model_settings() == {
        "backbone": "mobilenet_v3",
        "level": "category",
        "image_size": 256,
    }
    assert again.model_level() == "category"
    again.set_model_settings(image_size=None, level="species")
    assert Workspace.open(ws.root).model_settings() == {
        "backbone": "mobilenet_v3",
        "level": "species",
    }


def test_an_unknown_model_setting_is_refused_and_nothing_changes(tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    with pytest.raises(
        InvalidChoice,
        match="unknown model setting 'lr'; choose one of: backbone, level, image_size",
    ):
        ws.set_model_settings(backbone="mobilenet_v3", lr=0.1)
    assert Workspace.open(ws.root).model_settings() == {"level": "species"}
    assert ws.model_settings() == {"level": "species"}
