"""The catalog's Label Studio tables: task records and per-task annotation state."""

from __future__ import annotations

from workbench.catalog import Box, ImageRecord
from workbench.catalog.records import LsAnnotation


def _catalog(workspace_factory):
    ws = workspace_factory(classes=["a", "b"])
    catalog = ws.open_catalog()
    ids = [
        catalog.add_image(ImageRecord(id=None, path=f"/img/{i}.jpg", width=10, height=10))
        for i in range(3)
    ]
    return catalog, ids


def _ann(aid, image_id, chosen=True, cancelled=False):
    return LsAnnotation(
        annotation_id=aid,
        task_id=100 + image_id,
        image_id=image_id,
        annotator="x",
        updated_at="t",
        was_cancelled=cancelled,
        n_boxes=1,
        chosen=chosen,
        result=[],
    )


def test_recording_tasks_twice_keeps_one_row_per_image(workspace_factory):
    catalog, ids = _catalog(workspace_factory)
    catalog.record_ls_tasks(5, [(ids[0], 11, "v1"), (ids[1], 12, None)])
    catalog.record_ls_tasks(5, [(ids[0], 11, "v1")])
    assert catalog.ls_task_map(5) == {ids[0]: 11, ids[1]: 12}
    assert catalog.ls_prediction_versions(5) == {11: "v1", 12: None}
    catalog.forget_ls_tasks(5, [12])
    assert catalog.ls_task_count(5) == 1


def test_applying_a_task_writes_boxes_and_clearing_restores_unannotated(workspace_factory):
    catalog, ids = _catalog(workspace_factory)
    image = ids[0]
    catalog.apply_ls_task(
        5,
        100 + image,
        image,
        [_ann(7, image)],
        [Box("a", 1, 1, 5, 5, source="labelstudio", annotation_id=7)],
    )
    assert [b.annotation_id for b in catalog.boxes_for(image)] == [7]
    assert catalog.get_image(image).annotated
    assert [a.annotation_id for a in catalog.ls_annotations(5)[100 + image]] == [7]

    catalog.apply_ls_task(5, 100 + image, image, [], None)
    assert catalog.boxes_for(image) == [] and not catalog.get_image(image).annotated
    assert catalog.ls_annotations(5) == {}


def test_a_negative_is_annotated_without_boxes_and_imported_boxes_stay(workspace_factory):
    catalog, ids = _catalog(workspace_factory)
    catalog.replace_boxes(ids[1], [Box("b", 0, 0, 2, 2)])  # from an import
    catalog.apply_ls_task(5, 101, ids[2], [_ann(8, ids[2])], [])
    assert catalog.get_image(ids[2]).annotated and catalog.boxes_for(ids[2]) == []
    catalog.apply_ls_task(5, 102, ids[1], [], None)
    assert [b.source for b in catalog.boxes_for(ids[1])] == ["import"]
    assert catalog.get_image(ids[1]).annotated


def test_a_skip_only_records_the_annotation(workspace_factory):
    catalog, ids = _catalog(workspace_factory)
    catalog.apply_ls_task(
        5, 100, ids[0], [_ann(9, ids[0], chosen=False, cancelled=True)], None, update_truth=False
    )
    assert catalog.ls_annotations(5)[100][0].was_cancelled
    assert not catalog.get_image(ids[0]).annotated


def test_promoted_model_predictions_and_uncertainties_are_read(workspace_factory):
    catalog, ids = _catalog(workspace_factory)
    assert catalog.promoted_model() is None
    with catalog.atomic() as db:
        db.execute(
            "INSERT INTO models (version, created_at, promoted, level) "
            "VALUES ('v1', 't', 0, 'species')"
        )
        db.execute(
            "INSERT INTO models (version, created_at, promoted, promoted_at, level, classes_json) "
            "VALUES ('v2', 't', 1, 't', 'species', '[\"a\"]')"
        )
        db.execute(
            "INSERT INTO predictions VALUES (?, 'v2', '[{\"label\": \"a\"}]', 't')", (ids[0],)
        )
        db.execute(
            "INSERT INTO priorities (image_id, model_version, uncertainty, created_at) "
            "VALUES (?, 'v2', 0.4, 't')",
            (ids[0],),
        )
    m = catalog.promoted_model()
    assert (m.version, m.level, m.classes) == ("v2", "species", ["a"])
    assert catalog.predictions("v2", ids) == {ids[0]: [{"label": "a"}]}
    assert catalog.uncertainty_by_image("v2", ids) == {ids[0]: 0.4}
