"""Classifier metrics, dataset building, regimen freezing, registry tasks, CLI."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from workbench.catalog.records import ImageRecord
from workbench.classify import models
from workbench.classify.config import ClassifyConfig
from workbench.classify.dataset import catalog_images, folder_images
from workbench.classify.metrics import confusion, scores
from workbench.cli import cli
from workbench.errors import WorkbenchError

pytestmark = pytest.mark.unit
torch.set_num_threads(1)


def test_binary_scores_are_the_positive_class_ones():
    # positive = 0: 3 true positives, 1 false positive, 2 false negatives, 4 true negatives
    truth = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    pred = [0, 0, 0, 1, 1, 0, 1, 1, 1, 1]
    s = scores(truth, pred, 2)
    assert s["accuracy"] == pytest.approx(0.7)
    assert s["precision"] == pytest.approx(3 / 4)
    assert s["recall"] == pytest.approx(3 / 5)
    assert s["f_score"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_multiclass_scores_are_macro_means_and_unpredicted_class_scores_zero():
    truth = [0, 0, 1, 1, 2, 2]
    pred = [0, 0, 1, 0, 1, 1]
    assert confusion(truth, pred, 3) == [[2, 0, 0], [1, 1, 0], [0, 2, 0]]
    s = scores(truth, pred, 3)
    # precision: 2/3, 1/3, 0 ; recall: 1, 1/2, 0
    assert s["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert s["recall"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert s["accuracy"] == pytest.approx(0.5)


def test_macro_means_leave_out_classes_absent_from_the_set():
    # class 2 is neither true nor predicted here: all correct means 1, not 2/3
    s = scores([0, 1, 1], [0, 1, 1], 3)
    assert s["accuracy"] == 1.0
    assert s["precision"] == pytest.approx(1.0)
    assert s["recall"] == pytest.approx(1.0)
    assert s["f_score"] == pytest.approx(1.0)


def test_transfer_freezes_all_but_the_last_layer():
    net = models.build_classifier("efficientnet_lite0", 2, pretrained=False)
    head = models.set_trainable(net, "efficientnet_lite0", all_layers=False)
    assert head == 1280 * 2 + 2
    assert models.set_trainable(net, "efficientnet_lite0", all_layers=True) == (
        models.parameter_count(net)
    )


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(WorkbenchError, match="known: efficientnet_lite0, alexnet"):
        models.get_spec("lenet")


def _add(catalog, label, n, start=0):
    for i in range(n):
        catalog.add_image(ImageRecord(id=None, path=f"/x/{label}/{start + i}.jpg", label=label))


def test_binary_dataset_puts_other_classes_and_background_in_the_negative(workspace_factory):
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        _add(catalog, "elephant_ivory", 10)
        _add(catalog, "non_wildlife", 10)
        _add(catalog, "background", 5)
        cfg = ClassifyConfig(positive=["elephant_ivory"], negatives=True)
        items = catalog_images(catalog, ws.taxonomy, cfg)
        labels = sorted({i.label for i in items})
        assert labels == ["elephant_ivory", "other"]
        assert sum(i.label == "other" for i in items) == 15
        assert {i.split for i in items} <= {"train", "val", "test"}
        no_neg = catalog_images(catalog, ws.taxonomy, ClassifyConfig(positive=["elephant_ivory"]))
        assert sum(i.label == "other" for i in no_neg) == 10


def test_a_single_class_is_refused_with_what_to_do(workspace_factory):
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        _add(catalog, "elephant_ivory", 6)
        with pytest.raises(WorkbenchError, match="at least two classes"):
            catalog_images(catalog, ws.taxonomy, ClassifyConfig())


def test_unknown_test_folders_are_named(tmp_path, workspace_factory):
    ws = workspace_factory()
    (tmp_path / "elephant_ivory").mkdir()
    (tmp_path / "unicorn").mkdir()
    cfg = ClassifyConfig(positive=["elephant_ivory"])
    with pytest.raises(WorkbenchError, match="unicorn"):
        folder_images(tmp_path, ["elephant_ivory", "other"], ws.taxonomy, cfg)


def test_a_classifier_is_never_the_promoted_detector(workspace_factory):
    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        catalog.add_model("v001", None, "category", ["a"], {}, {}, task="detect")
        catalog.add_model("v002", None, "category", ["a", "b"], {}, {}, task="classify")
        catalog.promote_model("v001")
        catalog.promote_model("v002")
        assert catalog.promoted_model().version == "v001"
        assert catalog.promoted_model(task="classify").version == "v002"
        assert catalog.model("v002").task == "classify"


def test_cli_train_without_labelled_images_fails_clearly(workspace_factory):
    ws = workspace_factory()
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "classify", "train", "--epochs", "1"])
    assert result.exit_code == 1
    assert "at least two classes" in result.output


def test_cli_evaluate_without_a_classifier_says_how_to_make_one(workspace_factory):
    ws = workspace_factory()
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "classify", "evaluate"])
    assert result.exit_code == 1
    assert "wb classify train" in result.output


def test_cli_bad_test_set_value_is_a_usage_error(workspace_factory):
    ws = workspace_factory()
    result = CliRunner().invoke(
        cli, ["-w", str(ws.root), "classify", "evaluate", "--test-set", "nofolder"]
    )
    assert result.exit_code == 2
    assert "NAME=FOLDER" in result.output


def test_a_classifier_named_where_a_detector_is_wanted_is_refused(workspace_factory):
    from workbench.detection.registry import Registry

    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        catalog.add_model("v001", None, "category", ["a", "b"], {}, {}, task="classify")
        with pytest.raises(WorkbenchError, match="is a 'classify' model, not a 'detect' one"):
            Registry.of(ws, catalog).resolve("v001")
        assert Registry.of(ws, catalog).resolve("v001", task="classify").version == "v001"
