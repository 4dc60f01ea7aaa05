"""`prioritize()`: candidates, predictions, labels at the model's level, selection, storage;
and the scores `apply_order` writes into Label Studio (with a recording client)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ls_fakes import RecordingClient
from prioritize_cases import (
    CLASSES,
    VERSION,
    BrightnessModel,
    add_image,
    confident_and_unsure,
    draw,
    register_model,
)

from workbench.active.prioritize import (
    FEATURES_FILE,
    NothingToPrioritize,
    PrioritizeConfig,
    prioritize,
    product_classes,
)
from workbench.active.selection import SelectionConfig
from workbench.active.uncertainty import UncertaintyConfig
from workbench.catalog.records import PriorityRecord
from workbench.errors import WorkbenchError
from workbench.labelstudio.ordering import (
    UNCERTAINTY_SAMPLING,
    annotation_scores,
    apply_order,
)
from workbench.labelstudio.project import open_project

pytestmark = pytest.mark.unit


@pytest.fixture
def ws(workspace_factory):
    return workspace_factory()  # the default (wildlife) taxonomy


def test_unsure_images_come_first_and_every_candidate_is_stored(ws, tmp_path):
    with ws.open_catalog() as catalog:
        ids = confident_and_unsure(tmp_path, catalog)
        register_model(ws, catalog)
        model = BrightnessModel()
        result = prioritize(
            ws, catalog, PrioritizeConfig(selection=SelectionConfig(batch=2)), predictor=model
        )
        assert [p.image_id for p in result.ranked] == [
            ids["unsure"],
            ids["middling"],
            ids["fair"],
            ids["sure"],
        ]
        assert [p.image_id for p in result.batch] == [ids["unsure"], ids["middling"]]
        assert sum(model.predicted) == 4 and result.predicted == 4  # not the annotated/excluded
        candidates = {ids[k] for k in ("sure", "fair", "unsure", "middling")}
        assert set(catalog.predictions(VERSION)) == candidates
        stored = catalog.priorities(VERSION)
        assert [r.image_id for r in stored] == [p.image_id for p in result.ranked]
        assert [r.selected for r in stored] == [True, True, False, False]
        unsure = stored[0]
        # 1 - 0.4 least confidence, lifted by "labelled a product, no confident box"
        assert unsure.components["base"] == pytest.approx(1 - 102 / 255, abs=1e-4)
        assert unsure.components["missed_product"] == 1.0
        assert unsure.uncertainty == pytest.approx(1 - (102 / 255) * 0.5, abs=1e-4)
        assert result.to_json()[0] == {
            "path": str((tmp_path / "img" / "unsure.png").resolve()),
            "uncertainty": unsure.uncertainty,
            "components": unsure.components,
        }


def test_stored_predictions_are_reused_and_only_missing_ones_predicted(ws, tmp_path):
    with ws.open_catalog() as catalog:
        ids = confident_and_unsure(tmp_path, catalog)
        register_model(ws, catalog)
        catalog.store_predictions(VERSION, {ids["sure"]: [], ids["fair"]: [], ids["middling"]: []})
        model = BrightnessModel()
        result = prioritize(ws, catalog, predictor=model)
        assert model.predicted == [1] and result.predicted == 1
        # an image without boxes, labelled as a product: the missed-product signal alone
        empty = next(p for p in result.ranked if p.image_id == ids["sure"])
        assert empty.components["boxes"] == 0 and empty.uncertainty == pytest.approx(0.5)


def test_image_labels_are_mapped_to_the_model_level_and_lookalikes_are_not_products(ws, tmp_path):
    assert product_classes(CLASSES, ws.taxonomy) == ["elephant", "pangolin", "tiger"]
    with ws.open_catalog() as catalog:
        lookalike = add_image(catalog, draw(tmp_path / "a.png", 80), label="non_wildlife")
        product = add_image(catalog, draw(tmp_path / "b.png", 80), label="tiger_claw")
        unknown = add_image(catalog, draw(tmp_path / "c.png", 80), label="not_in_taxonomy")
        register_model(ws, catalog)
        result = prioritize(ws, catalog, predictor=BrightnessModel())
        by_id = {p.image_id: p for p in result.ranked}
        assert by_id[product].label == "tiger"
        assert by_id[product].components["label_disagreement"] == 1.0  # the box says elephant
        assert by_id[product].components["missed_product"] == 1.0
        assert by_id[lookalike].components["missed_product"] == 0.0
        assert by_id[unknown].label is None
        assert by_id[unknown].uncertainty == by_id[unknown].components["base"]
        assert by_id[product].uncertainty > by_id[lookalike].uncertainty > 0


def test_diverse_batch_holds_one_of_each_copy_and_caches_features(ws, tmp_path):
    with ws.open_catalog() as catalog:
        copies = [add_image(catalog, draw(tmp_path / f"copy{i}.png", 60)) for i in range(4)]
        others = [
            add_image(catalog, draw(tmp_path / f"other{i}.png", 120 + 20 * i, (90 * i, 40)))
            for i in range(3)
        ]
        register_model(ws, catalog)
        model = BrightnessModel()
        cfg = PrioritizeConfig(selection=SelectionConfig("diverse", batch=3))
        result = prioritize(ws, catalog, cfg, predictor=model)
        picked = [p.image_id for p in result.batch]
        assert len(picked) == 3 and picked[0] in copies
        assert sum(1 for i in picked if i in copies) == 1
        plain = prioritize(
            ws, catalog, PrioritizeConfig(selection=SelectionConfig(batch=3)), predictor=model
        )
        assert all(p.image_id in copies for p in plain.batch)  # what diverse protects against
        assert model.featurised == 7 and result.features_computed == 7
        cache = np.load(ws.models_dir / VERSION / FEATURES_FILE)
        assert sorted(cache["ids"].tolist()) == sorted(copies + others)
        again = prioritize(ws, catalog, cfg, predictor=model)
        assert model.featurised == 7 and again.features_computed == 0
        assert [p.image_id for p in again.batch] == picked


def test_scores_and_aggregates_are_configurable(ws, tmp_path):
    with ws.open_catalog() as catalog:
        confident_and_unsure(tmp_path, catalog)
        register_model(ws, catalog)
        cfg = PrioritizeConfig(uncertainty=UncertaintyConfig(score="margin", aggregate="mean"))
        result = prioritize(ws, catalog, cfg, predictor=BrightnessModel())
        top = result.ranked[0].components
        assert (top["score"], top["aggregate"]) == ("margin", "mean")
        assert top["base"] == pytest.approx(1 - (102 / 255 - (1 - 102 / 255) / 2), abs=1e-4)


def test_without_a_promoted_model_it_says_what_to_do(ws, tmp_path):
    with ws.open_catalog() as catalog:
        confident_and_unsure(tmp_path, catalog)
        with pytest.raises(WorkbenchError, match="no promoted model yet: run `wb retrain`"):
            prioritize(ws, catalog, predictor=BrightnessModel())
        register_model(ws, catalog, promote=False)
        with pytest.raises(WorkbenchError, match="no model version 'v999'; known versions: v001"):
            prioritize(ws, catalog, PrioritizeConfig(model="v999"), predictor=BrightnessModel())
        assert (
            prioritize(
                ws, catalog, PrioritizeConfig(model=VERSION), predictor=BrightnessModel()
            ).version
            == VERSION
        )


def test_nothing_left_to_rank_is_an_error(ws, tmp_path):
    with ws.open_catalog() as catalog:
        add_image(catalog, draw(tmp_path / "a.png", 80), annotated=True)
        register_model(ws, catalog)
        with pytest.raises(NothingToPrioritize, match="every active image is annotated"):
            prioritize(ws, catalog, predictor=BrightnessModel())


# ---- the order written into Label Studio -------------------------------------------
def test_annotation_scores_put_the_most_uncertain_lowest():
    rows = [
        PriorityRecord(i, f"/{i}.png", u, {}, rank, False)
        for i, u, rank in [(1, 0.9, 1), (2, 0.2, 3), (3, 0.5, 2)]
    ]
    assert annotation_scores(rows) == pytest.approx({1: 0.1, 2: 0.8, 3: 0.5})
    # a diverse batch [3, 2] first, in batch order; the rest after, still by uncertainty
    scores = annotation_scores(rows, batch=[3, 2])
    assert sorted(scores, key=scores.get) == [3, 2, 1]
    assert scores[1] == pytest.approx(0.5 + 0.1 / 2)


def test_apply_order_rescored_old_predictions_adds_missing_ones_and_sets_the_version(ws, tmp_path):
    with ws.open_catalog() as catalog:
        ids = confident_and_unsure(tmp_path, catalog)
        register_model(ws, catalog)
        prioritize(ws, catalog, predictor=BrightnessModel())
        ws.set("labelstudio", "project_id", 7)
        ws.set("labelstudio", "project_level", "species")
        catalog.record_ls_tasks(
            7,
            [
                (ids["unsure"], 100, VERSION),
                (ids["sure"], 101, "v000"),
                (ids["fair"], 102, VERSION),
            ],
        )
        unc = catalog.uncertainty_by_image(VERSION)
        client = RecordingClient(
            [
                SimpleNamespace(id=1, task=100, model_version=VERSION, score=0.99),
                SimpleNamespace(id=2, task=101, model_version="v000", score=0.5),
                SimpleNamespace(id=3, task=102, model_version=VERSION, score=1 - unc[ids["fair"]]),
            ]
        )
        order = apply_order(open_project(ws, client), catalog, VERSION)
        assert client.updated == {1: {"score": pytest.approx(1 - unc[ids["unsure"]])}}
        assert list(client.created) == [101]
        made = client.created[101]
        assert made["model_version"] == VERSION
        assert made["score"] == pytest.approx(1 - unc[ids["sure"]])
        assert [r["value"]["rectanglelabels"] for r in made["result"]] == [["elephant"]]
        assert client.project_updates == [
            {"model_version": VERSION, "sampling": UNCERTAINTY_SAMPLING}
        ]
        assert (order.updated, order.created, order.unchanged, order.not_pushed) == (1, 1, 1, 1)
        assert order.first_image_id == ids["unsure"]
        assert catalog.ls_prediction_versions(7)[101] == VERSION


def test_apply_order_without_a_project_says_push_first(ws, tmp_path):
    with ws.open_catalog() as catalog:
        confident_and_unsure(tmp_path, catalog)
        register_model(ws, catalog)
        prioritize(ws, catalog, predictor=BrightnessModel())
        with pytest.raises(WorkbenchError, match="no Label Studio project yet: run `wb push`"):
            apply_order(open_project(ws, RecordingClient([])), catalog, VERSION)


def test_taxonomy_fixture_is_the_default_one(ws):
    # the cases above lean on the default taxonomy's species and look-alike
    assert ws.taxonomy.classes("species") == CLASSES
    assert ws.taxonomy.lookalike_species() == ["non_wildlife"]
