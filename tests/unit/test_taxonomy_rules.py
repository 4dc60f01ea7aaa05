"""The taxonomy rules every area shares, stated once: mapping a label to a level with
each call site's policy for labels the taxonomy does not know, the image-level label,
and the one "unknown X; choose one of" check with each module's own error class."""

from __future__ import annotations

import pytest

from workbench.active.prioritize import label_at_level
from workbench.detection.evaluate import _to_level
from workbench.errors import InvalidChoice, UnknownClassError, WorkbenchError
from workbench.formats import majority_label
from workbench.labelstudio.config import ControlMapping, ProjectLabel, RectangleControl
from workbench.labelstudio.tasks import to_class
from workbench.review.samples import _mapped
from workbench.taxonomy import BACKGROUND, Taxonomy, image_level_label

TAX = Taxonomy.default()


class _Ws:
    taxonomy = TAX


def _project_labels(*labels: str, level: str = "species") -> ControlMapping:
    """The mapping of a project config with these labels (no predicted_values)."""
    control = RectangleControl("label", "image", "image", tuple(ProjectLabel(v) for v in labels))
    return ControlMapping.build(control, TAX, level)


# ---- to_level: the mapping, then each policy --------------------------------------
@pytest.mark.parametrize(
    "label, level, expected",
    [
        ("elephant_ivory", "species", "elephant"),
        ("elephant", "species", "elephant"),
        ("elephant_ivory", "category", "elephant_ivory"),
        ("elephant", "category", "elephant"),  # several categories: stays the species
        ("non_wildlife", "category", "non_wildlife"),  # one category: maps onto it
        (BACKGROUND, "species", BACKGROUND),
        (None, "category", None),
    ],
)
def test_to_level_maps_known_labels_whatever_the_policy(label, level, expected):
    for unknown in ("raise", "keep", "none"):
        assert TAX.to_level(label, level, unknown=unknown) == expected


@pytest.mark.parametrize("unknown, expected", [("keep", "zebra"), ("none", None)])
def test_to_level_turns_an_unknown_label_into_what_the_policy_says(unknown, expected):
    assert TAX.to_level("zebra", "category", unknown=unknown) == expected
    with pytest.raises(UnknownClassError):
        TAX.to_level("zebra", "category")


# each former copy, with the policy it had: who keeps an unknown label, who drops it
@pytest.mark.parametrize(
    "mapping, unknown_becomes",
    [
        (lambda label: label_at_level(label, "species", TAX), None),  # prioritize: no place
        (lambda label: _to_level(_Ws(), label, "species"), "zebra"),  # evaluate: as written
        (lambda label: _mapped(TAX, label, "species"), "zebra"),  # review: as written
        (lambda label: to_class(label, TAX.classes("species"), "species", TAX), None),
        (lambda label: _project_labels("elephant", "tiger").label_for(label), None),
    ],
)
def test_each_call_site_keeps_its_policy_for_unknown_labels(mapping, unknown_becomes):
    assert mapping("zebra") == unknown_becomes
    assert mapping("elephant_skin") == "elephant"


def test_label_at_level_and_to_class_have_no_place_for_a_missing_label():
    assert label_at_level("", "species", TAX) is None
    assert label_at_level(None, "species", TAX) is None
    assert to_class(None, ["elephant"], "species", TAX) is None
    assert to_class("tiger_claw", ["elephant"], "species", TAX) is None  # known, not a class


def test_a_class_maps_onto_the_projects_labels_as_itself_or_at_the_projects_level():
    mapping = _project_labels("elephant_ivory", "tiger")
    assert mapping.label_for("elephant_ivory") == "elephant_ivory"
    assert mapping.label_for("tiger_fang_ambiguous") == "tiger"  # species level: its species
    assert mapping.label_for("pangolin") is None
    at_category = _project_labels("elephant_ivory", "tiger", level="category")
    assert at_category.label_for("tiger_fang_ambiguous") is None  # not coarsened there
    control = RectangleControl("label", "image", "image", (ProjectLabel("pangolin"),))
    assert ControlMapping.build(control, None, "species").label_for("pangolin") == "pangolin"


# ---- the image-level label -----------------------------------------------------------
@pytest.mark.parametrize(
    "own, boxes, expected",
    [
        ("tiger", ["elephant", "elephant"], "tiger"),  # its own label wins
        (None, ["tiger", "elephant", "elephant"], "elephant"),  # else the majority box class
        (None, ["tiger", "elephant"], "tiger"),  # a tie: the first one seen
        ("", ["pangolin"], "pangolin"),  # an empty label is no label
        (None, [], BACKGROUND),  # else background
        (BACKGROUND, [], BACKGROUND),
    ],
)
def test_image_level_label(own, boxes, expected):
    assert image_level_label(own, boxes) == expected
    assert image_level_label(own, iter(boxes)) == expected


def test_a_file_without_label_or_boxes_has_no_image_level_label():
    from workbench.catalog.records import Box

    assert image_level_label(None, [], default=None) is None
    assert majority_label(None) is None and majority_label([]) is None
    boxes = [Box("b", 0, 0, 1, 1), Box("a", 0, 0, 1, 1), Box("a", 0, 0, 1, 1)]
    assert majority_label(boxes) == "a"


def test_image_accuracy_scores_an_unlabelled_image_by_its_majority_box_class():
    from workbench.catalog.records import Box
    from workbench.detection.metrics import evaluate_detections

    gt = {
        "a": [
            Box("tiger", 0, 0, 10, 10),
            Box("elephant", 20, 20, 30, 30),
            Box("elephant", 40, 40, 50, 50),
        ],
        "b": [],
    }
    dets = {"a": [{"label": "elephant", "x1": 20, "y1": 20, "x2": 30, "y2": 30, "score": 0.9}]}
    res = evaluate_detections(gt, dets, classes=["elephant", "tiger"])
    assert sorted((o.image, o.label, o.predicted, o.correct) for o in res.image_outcomes) == [
        ("a", "elephant", "elephant", True),
        ("b", BACKGROUND, BACKGROUND, True),
    ]


# ---- check_choice at each site -------------------------------------------------------
def _sites(tmp_path):
    from workbench import demo_data, formats
    from workbench.active.selection import SelectionConfig
    from workbench.active.uncertainty import (
        UncertaintyConfig,
        aggregate,
        box_uncertainty,
    )
    from workbench.detection.backbones import get_backbone
    from workbench.detection.evaluate import EvaluationError, evaluate_model
    from workbench.detection.losses import make_classification_loss
    from workbench.detection.metrics import EvaluationConfig
    from workbench.detection.retrain import RetrainOptions
    from workbench.detection.train import TrainConfig

    return [
        (
            lambda: SelectionConfig(strategy="x"),
            InvalidChoice,
            "unknown strategy 'x'; choose one of: uncertainty, diverse, random",
        ),
        (
            lambda: UncertaintyConfig(score="x"),
            InvalidChoice,
            "unknown uncertainty score 'x'; choose one of: least_confidence, margin, entropy",
        ),
        (
            lambda: UncertaintyConfig(aggregate="x"),
            InvalidChoice,
            "unknown aggregate 'x'; choose one of: max, mean, sum",
        ),
        (lambda: box_uncertainty([0.5, 0.5], "x"), InvalidChoice, "unknown uncertainty score 'x'"),
        (lambda: aggregate([0.5], "x"), InvalidChoice, "unknown aggregate 'x'"),
        (
            lambda: formats.read(tmp_path, "x"),
            formats.FormatError,
            "unknown format 'x'; choose one of: folders, coco, voc, yolo, labelstudio",
        ),
        (
            lambda: formats.write("x", tmp_path / "out", [], []),
            formats.FormatError,
            "unknown export format 'x'; choose one of: coco, voc, yolo",
        ),
        (
            lambda: EvaluationConfig(classes=["a"], method="x"),
            InvalidChoice,
            "unknown evaluation method 'x'; choose one of: coco",
        ),
        (
            lambda: evaluate_model(None, None, split="x"),
            EvaluationError,
            "unknown split 'x'; choose one of: train, val, test",
        ),
        (
            lambda: RetrainOptions(promote="x"),
            InvalidChoice,
            "unknown promotion policy 'x'; choose one of: if_better, always, never",
        ),
        (lambda: get_backbone("x"), InvalidChoice, "unknown backbone 'x'; choose one of: "),
        (
            lambda: TrainConfig(regimen="x"),
            InvalidChoice,
            "unknown regimen 'x'; choose one of: auto, combi, finetune, scratch",
        ),
        (
            lambda: make_classification_loss("x"),
            InvalidChoice,
            "unknown loss 'x'; choose one of: ce, asl",
        ),
        (
            lambda: demo_data._near_duplicate(None, "x", None),
            InvalidChoice,
            "unknown near-duplicate kind 'x'; choose one of: resized, ",
        ),
    ]


def test_every_unknown_choice_raises_a_domain_error_with_the_shared_message(tmp_path):
    for call, error, message in _sites(tmp_path):
        with pytest.raises(error) as err:
            call()
        assert str(err.value).startswith(message), str(err.value)
        # the CLI shows domain errors as messages; a ValueError catcher still sees them
        assert isinstance(err.value, WorkbenchError)
        if error is InvalidChoice:
            assert isinstance(err.value, ValueError)


def test_empty_input_still_short_cuts_before_the_choice_is_checked():
    from workbench.active.uncertainty import aggregate, box_uncertainty

    # empty input short-cuts to 0.0 before the name is looked at (as it always did)
    assert box_uncertainty([], "x") == 0.0 and aggregate([], "x") == 0.0
