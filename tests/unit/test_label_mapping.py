"""A Label Studio project someone else set up (issue 22): its label config parsed once
(``parse_label_config``) and the one mapping between model classes and its labels
(``ControlMapping``), on the configs of the issue's table, for `wb serve`, push and pull."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workbench.catalog import ImageRecord
from workbench.errors import WorkspaceError
from workbench.labelstudio.config import (
    ControlMapping,
    LabelConfigError,
    detection_config,
    mapping_report,
    parse_label_config,
)
from workbench.labelstudio.tasks import build_task
from workbench.taxonomy import Taxonomy

pytestmark = pytest.mark.unit

FLAT = Taxonomy.flat(["cat", "dog", "tiger"])
WILD = Taxonomy.default()


def config(*controls: str, images: tuple[str, ...] = ("image",)) -> str:
    tags = "".join(f'<Image name="{n}" value="${n}"/>' for n in images)
    return f"<View>{tags}{''.join(controls)}</View>"


def rect(labels: str, name: str = "label", to: str = "image", attrs: str = "") -> str:
    return f'<RectangleLabels name="{name}" toName="{to}" {attrs}>{labels}</RectangleLabels>'


NOT_THE_MODELS = config(rect('<Label value="Airplane"/><Label value="Car"/>'))
THRESHOLD = config(
    rect('<Label value="cat"/><Label value="dog"/>', attrs='model_score_threshold="0.05"')
)
RENAMED = config(
    rect(
        '<Label value="Big cat" predicted_values=" Tiger ,CAT"/><Label value="Hound"/>'
        '<Label value="Airplane"/>'
    )
)
TWO_IMAGES = config(
    rect('<Label value="cat"/>', name="left", to="a"),
    rect('<Label value="Dog" predicted_values="dog"/>', name="right", to="b"),
    images=("a", "b"),
)


def mapping_of(text: str, taxonomy=FLAT, level="species", label_map=None) -> ControlMapping:
    return parse_label_config(text).mappings(taxonomy, level, label_map)[0]


# ---- parsing ------------------------------------------------------------------------
def test_a_config_is_parsed_into_its_controls_images_labels_and_threshold():
    (control,) = parse_label_config(RENAMED).controls
    assert (control.name, control.to_name, control.data_key) == ("label", "image", "image")
    assert control.label_values == ["Big cat", "Hound", "Airplane"]
    assert control.labels[0].predicted_values == ("Tiger", "CAT")  # trimmed, as written
    assert control.score_threshold is None
    assert parse_label_config(THRESHOLD).controls[0].score_threshold == 0.05
    older = config(rect('<Label value="cat"/>', attrs='score_threshold="0.4"'))
    assert parse_label_config(older).controls[0].score_threshold == 0.4


def test_each_control_of_a_config_with_two_images_reads_its_own_task_field():
    left, right = parse_label_config(TWO_IMAGES).controls
    assert (left.name, left.to_name, left.data_key) == ("left", "a", "a")
    assert (right.name, right.to_name, right.data_key) == ("right", "b", "b")


@pytest.mark.parametrize(
    "text, message",
    [
        ("<View", "not valid XML"),
        ("<View><Text name='t' value='$t'/></View>", "no RectangleLabels control"),
        (config(rect('<Label value="cat"/>', to="nowhere")), 'no <Image name="nowhere"'),
        (
            config(rect('<Label value="cat"/>', attrs='model_score_threshold="high"')),
            'model_score_threshold="high" is not a score between 0 and 1',
        ),
        (
            config(rect('<Label value="cat"/>', attrs='model_score_threshold="1.5"')),
            "not a score between 0 and 1",
        ),
    ],
)
def test_a_config_that_cannot_take_rectangles_is_refused_saying_why(text, message):
    with pytest.raises(LabelConfigError, match=message.replace("(", r"\(").replace("$", r"\$")):
        parse_label_config(text)


@pytest.mark.parametrize(
    "attack",
    [
        # billion laughs: entities that expand to gigabytes
        '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" '
        'toName="image"><Label value="&b;"/></RectangleLabels></View>',
        # an external entity reading a local file
        '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" '
        'toName="image"><Label value="&x;"/></RectangleLabels></View>',
    ],
)
def test_a_config_with_entities_is_refused_before_anything_is_expanded(attack):
    with pytest.raises(LabelConfigError, match="declares a DTD or entities"):
        parse_label_config(attack)


# ---- the mapping --------------------------------------------------------------------
def test_predicted_values_feed_a_renamed_label_case_insensitively_and_trimmed():
    m = mapping_of(RENAMED)
    assert m.label_for("tiger") == "Big cat" and m.label_for("cat") == "Big cat"
    assert m.label_for("dog") is None  # 'Hound' names no class and is not 'dog'
    assert m.fed_by(["cat", "dog", "tiger"]) == {
        "Big cat": ["cat", "tiger"],
        "Hound": [],
        "Airplane": [],
    }


def test_without_predicted_values_a_label_gets_the_class_of_its_own_name_in_any_case():
    m = mapping_of(config(rect('<Label value="CAT"/><Label value="Dog"/>')))
    assert (m.label_for("cat"), m.label_for("dog"), m.label_for("tiger")) == ("CAT", "Dog", None)


def test_a_species_label_collects_its_products_boxes_at_the_projects_level():
    text = config(rect('<Label value="Tiger"/><Label value="elephant_ivory"/>'))
    at_species = mapping_of(text, WILD, "species")
    assert at_species.label_for("tiger_claw") == "Tiger"
    assert at_species.label_for("tiger_fang_ambiguous") == "Tiger"
    assert at_species.label_for("elephant_ivory") == "elephant_ivory"  # itself first
    assert at_species.label_for("elephant_skin") is None
    assert mapping_of(text, WILD, "category").label_for("tiger_claw") is None
    # predicted_values may name a species: its products come along
    named = mapping_of(config(rect('<Label value="Big cat" predicted_values="tiger"/>')), WILD)
    assert named.label_for("tiger_bone_ambiguous") == "Big cat"


def test_the_workspaces_label_map_replaces_a_labels_predicted_values():
    m = mapping_of(RENAMED, label_map={"big CAT": ("dog",), "Airplane": ("tiger",)})
    assert m.fed_by(["cat", "dog", "tiger"]) == {
        "Big cat": ["dog"],
        "Hound": [],
        "Airplane": ["tiger"],
    }


def test_a_class_named_by_two_labels_goes_to_the_first_and_a_note_says_so():
    m = mapping_of(config(rect('<Label value="A" predicted_values="cat"/><Label value="cat"/>')))
    assert m.label_for("cat") == "A"
    m = mapping_of(
        config(
            rect(
                '<Label value="A" predicted_values="cat"/><Label value="B" predicted_values="cat"/>'
            )
        )
    )
    assert m.label_for("cat") == "A"
    assert m.notes == ("class 'cat' is named by labels 'A' and 'B': its boxes go to 'A'",)


@pytest.mark.parametrize(
    "label, expected",
    [
        ("Big cat", (None, "it stands for several classes (Tiger, CAT)")),
        ("Hound", (None, "no class of the workspace taxonomy has this name")),
        ("Airplane", (None, "no class of the workspace taxonomy has this name")),
    ],
)
def test_a_project_label_that_names_no_single_class_cannot_be_mapped_back(label, expected):
    found, why = mapping_of(RENAMED).class_for(label)
    assert found is expected[0] and why.startswith(expected[1])


def test_a_project_label_maps_back_to_the_one_class_it_names_else_its_own_name():
    m = mapping_of(
        config(
            rect(
                '<Label value="Big cat" predicted_values="tiger"/><Label value="DOG"/>'
                '<Label value="Pets" predicted_values="rabbit"/>'
            )
        )
    )
    assert m.class_for("Big cat") == ("tiger", "")
    assert m.class_for("DOG") == ("dog", "")  # the taxonomy's spelling
    assert m.class_for("Pets") == (
        None,
        "it names 'rabbit', which is not a class of the workspace taxonomy",
    )
    species = mapping_of(
        config(rect('<Label value="tiger" predicted_values="tiger_claw, tiger_other"/>')), WILD
    )
    assert species.class_for("tiger") == ("tiger", "")  # several, but a class itself


def test_the_config_wb_push_writes_maps_every_class_onto_itself():
    for level in ("species", "category"):
        classes = WILD.classes(level)
        m = mapping_of(detection_config(classes), WILD, level)
        assert all(m.label_for(c) == c and m.class_for(c) == (c, "") for c in classes)


# ---- the report /setup and `wb serve --connect` give ----------------------------------
def test_the_report_says_which_labels_get_which_classes_and_which_reach_none():
    report = mapping_report(parse_label_config(RENAMED).mappings(FLAT, "species"), ["cat", "dog"])
    assert report.warning is None and report.unreached == ["dog"]
    assert report.lines(0.3) == [
        "labels of 'label' (image 'image', task field 'image'): Big cat <- cat; Hound <- "
        "nothing; Airplane <- nothing; min score 0.3",
        "  note: 'Big cat' names Tiger, not a class of the model",
        "model classes that reach no label: dog",
    ]


def test_the_report_notes_a_label_map_entry_that_names_no_label_of_the_project():
    mappings = parse_label_config(RENAMED).mappings(FLAT, "species", {"Hund": ("dog",)})
    report = mapping_report(mappings, ["cat", "dog"])
    assert report.controls[0].notes[-1] == (
        "[labelstudio.label_map] entries that name no label of the project: Hund"
    )


def test_the_report_warns_when_no_label_matches_any_class():
    report = mapping_report(parse_label_config(NOT_THE_MODELS).mappings(FLAT, "species"), ["cat"])
    assert report.warning.startswith(
        "no label of the project (Airplane, Car) matches any class of the model (cat): Label "
        "Studio gets no boxes. Name the classes in the labels' predicted_values"
    )
    assert "[labelstudio.label_map]" in report.warning
    assert report.lines()[-1] == f"warning: {report.warning}"


def test_the_report_shows_a_controls_own_threshold():
    report = mapping_report(parse_label_config(THRESHOLD).mappings(FLAT, "species"), ["cat"])
    assert report.lines(0.3)[0].endswith("min score 0.05 (model_score_threshold)")


# ---- the workspace setting ------------------------------------------------------------
def test_the_label_map_setting_takes_a_list_or_a_comma_separated_string(workspace_factory):
    ws = workspace_factory()
    assert ws.label_map() == {}
    ws.set("labelstudio", "label_map", {"Vehicle": ["car", " truck"], "Big cat": "tiger, lion"})
    assert ws.label_map() == {"Vehicle": ("car", "truck"), "Big cat": ("tiger", "lion")}
    ws.set("labelstudio", "label_map", {"Vehicle": 3})
    with pytest.raises(WorkspaceError, match="must be a class name or a list of them"):
        ws.label_map()
    ws.set("labelstudio", "label_map", "car")
    with pytest.raises(WorkspaceError, match="must be a table of project label"):
        ws.label_map()


# ---- push: tasks for someone else's project -------------------------------------------
def test_a_task_for_someone_elses_project_uses_its_image_field_and_label_names(tmp_path):
    from workbench.catalog.records import Box
    from workbench.labelstudio.tasks import ModelPrediction

    text = config(
        rect('<Label value="Big cat" predicted_values="tiger"/><Label value="Cat"/>', "box", "pic"),
        images=("pic",),
    )
    mapping = mapping_of(text)
    image = ImageRecord(id=3, path=str(tmp_path / "a.jpg"), width=100, height=50, label="tiger")
    pred = ModelPrediction(
        "v001",
        [
            {"label": "tiger", "score": 0.9, "x1": 0, "y1": 0, "x2": 50, "y2": 25},
            {"label": "dog", "score": 0.9, "x1": 0, "y1": 0, "x2": 50, "y2": 25},  # no label
        ],
    )
    truth = [Box(label="cat", x1=10, y1=10, x2=20, y2=20)]
    task = build_task(image, tmp_path, [], "species", FLAT, pred, truth, mapping)
    assert task["data"]["pic"] == "/data/local-files/?d=a.jpg" and "image" not in task["data"]
    assert task["data"]["label"] == "Big cat"
    (predicted,) = task["predictions"][0]["result"]
    assert (predicted["from_name"], predicted["to_name"]) == ("box", "pic")
    assert predicted["value"]["rectanglelabels"] == ["Big cat"]
    (annotated,) = task["annotations"][0]["result"]
    assert annotated["value"]["rectanglelabels"] == ["Cat"]


class TheirProject:
    """`get_project` of a project someone else made; records config updates."""

    def __init__(self, label_config: str):
        self.label_config, self.updates = label_config, []

    def get_project(self, project_id):
        return SimpleNamespace(id=project_id, label_config=self.label_config)

    def update_project(self, project_id, **fields):
        self.updates.append(fields)


def test_push_into_someone_elses_project_records_it_and_never_rewrites_its_config(
    workspace_factory,
):
    from workbench.labelstudio.push import ensure_project

    ws = workspace_factory(classes=["cat", "dog", "tiger"])
    client = TheirProject(RENAMED)
    with ws.open_catalog() as catalog:
        assert ensure_project(ws, catalog, client, "species", existing=12) == (12, False)
        assert (ws.project_id(), ws.project_external()) == (12, True)
        assert ensure_project(ws, catalog, client, "species") == (12, False)  # later pushes
    assert client.updates == []  # theirs: our config never replaces it


def test_push_refuses_a_project_whose_tasks_hold_two_images(workspace_factory):
    from workbench.labelstudio.push import ensure_project

    ws = workspace_factory(classes=["cat", "dog"])
    with ws.open_catalog() as catalog, pytest.raises(LabelConfigError) as err:
        ensure_project(ws, catalog, TheirProject(TWO_IMAGES), "species", existing=12)
    assert str(err.value).startswith(
        "Label Studio project 12 has 2 RectangleLabels controls ('left' on 'a', 'right' on "
        "'b'); `wb push` and `wb pull` put one image in a task"
    )
    assert ws.project_id() is None  # nothing recorded


def test_push_refuses_project_with_new_project_before_calling_label_studio(workspace_factory):
    from click.testing import CliRunner

    from workbench.cli import cli

    ws = workspace_factory()
    res = CliRunner().invoke(cli, ["-w", str(ws.root), "push", "--project", "4", "--new-project"])
    assert res.exit_code == 2
    assert "--project and --new-project exclude each other; choose one" in res.output


# ---- pull: project labels back to catalog classes --------------------------------------
class AnnotatedTasks:
    """A project whose tasks (image id -> the label of its one annotated box) are
    annotated; the config is the one `wb push` writes."""

    def __init__(self, labels: dict[int, str]):
        self.labels = labels

    def task_count(self, project_id):
        return len(self.labels)

    def users(self):
        return {}

    def iter_tasks(self, project_id, **kw):
        for n, (image_id, label) in enumerate(self.labels.items(), start=1):
            result = [
                {
                    "type": "rectanglelabels",
                    "from_name": "label",
                    "to_name": "image",
                    "original_width": 100,
                    "original_height": 50,
                    "value": {"x": 10, "y": 10, "width": 20, "height": 20}
                    | {"rectanglelabels": [label]},
                }
            ]
            annotation = {"id": 100 + n, "result": result, "updated_at": "2026-12-01T00:00:00Z"}
            yield SimpleNamespace(id=n, data={"wb_image_id": image_id}, annotations=[annotation])


def test_pull_leaves_out_tasks_with_a_label_no_class_stands_for_and_says_which(
    workspace_factory, tmp_path
):
    from workbench.labelstudio.project import Project
    from workbench.labelstudio.pull import UnmappedLabels, pull

    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        ids = [
            catalog.add_image(
                ImageRecord(id=None, path=str(tmp_path / f"{i}.jpg"), width=100, height=50)
            )
            for i in range(2)
        ]
        client = AnnotatedTasks({ids[0]: "elephant", ids[1]: "zebra"})
        project = Project(client, SimpleNamespace(url="x"), 4, "species", ws.taxonomy)
        with pytest.raises(UnmappedLabels) as err:
            pull(project, catalog)
        assert str(err.value).startswith(
            "1 task(s) not pulled (e.g. task 2): their annotations use project labels that map "
            "to no catalog class ('zebra': no class of the workspace taxonomy has this name"
        )
        assert err.value.result.updated_images == 1 and err.value.tasks == [2]
        assert [b.label for b in catalog.boxes_for(ids[0])] == ["elephant"]
        assert catalog.boxes_for(ids[1]) == [] and catalog.ls_annotations(4).keys() == {1}
