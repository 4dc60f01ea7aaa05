"""`wb dedup adjudicate` without a server: the adjudication config, task data, and which
answer counts when experts agree, disagree or skip."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.dedup.adjudicate import decide
from workbench.labelstudio.adjudication_project import (
    DISTINCT_CHOICE,
    MAX_IMAGES,
    AdjudicationAnswer,
    AdjudicationGroup,
    AdjudicationImage,
    adjudication_config,
    adjudication_task,
    blank_image,
)
from workbench.labelstudio.tasks import ImageOutsideRoot

pytestmark = pytest.mark.unit


def _answer(aid, choice, updated="2026-01-01T00:00:00", cancelled=False, who="a@x.org"):
    return AdjudicationAnswer(aid, who, updated, cancelled, choice)


def test_config_has_one_slot_per_image_and_every_label_plus_distinct():
    root = ET.fromstring(adjudication_config(["elephant_ivory", "non_wildlife"]))
    slots = [i.get("value") for i in root.iter("Image")]
    assert slots == [f"$image_{i}" for i in range(MAX_IMAGES)]
    choices = [c.get("value") for c in root.iter("Choice")]
    assert choices == ["elephant_ivory", "non_wildlife", DISTINCT_CHOICE]


def test_task_fills_shown_images_and_blanks_the_rest(tmp_path):
    root = tmp_path / "served"
    imgs = [
        AdjudicationImage(i, str(root / "photos" / lab / f"{i} a.jpg"), lab, 96, 64)
        for i, lab in ((7, "tiger_claw"), (9, "pangolin_raw_scale"))
    ]
    data = adjudication_task(AdjudicationGroup(3, "k", imgs), root)["data"]
    assert data["image_0"] == "/data/local-files/?d=photos/tiger_claw/7%20a.jpg"
    assert "tiger_claw" in data["caption_0"] and "96x64" in data["caption_0"]
    assert data["image_1"].endswith("9%20a.jpg") and data["image_2"] == blank_image(2)
    assert (data["wb_group_id"], data["wb_group_key"], data["wb_image_ids"]) == (3, "k", [7, 9])


def test_task_for_an_image_outside_the_served_folder_is_refused(tmp_path):
    group = AdjudicationGroup(1, "k", [AdjudicationImage(1, "/elsewhere/a.jpg", "tiger", 1, 1)])
    with pytest.raises(ImageOutsideRoot, match="outside the folder Label Studio serves"):
        adjudication_task(group, tmp_path)


def test_agreeing_answers_settle_with_the_latest_one():
    answer, made = decide(
        [
            _answer(1, "tiger", "2026-01-01"),
            _answer(2, "tiger", "2026-01-02"),
            _answer(3, None, cancelled=True),
        ]
    )
    assert answer.annotation_id == 2 and len(made) == 2


def test_disagreeing_or_skipped_answers_settle_nothing():
    assert decide([_answer(1, "tiger"), _answer(2, DISTINCT_CHOICE)])[0] is None
    answer, made = decide([_answer(1, "tiger", cancelled=True)])
    assert answer is None and made == []


def test_adjudicate_with_no_conflicts_says_so_without_label_studio(workspace_factory):
    ws = workspace_factory()
    r = CliRunner().invoke(cli, ["--workspace", str(Path(ws.root)), "dedup", "adjudicate"])
    assert r.exit_code == 0, r.output
    assert "no open conflict groups to adjudicate" in r.output


def test_adjudicate_pull_with_new_project_is_a_usage_error(workspace_factory):
    ws = workspace_factory()
    r = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "dedup", "adjudicate", "--pull", "--new-project"]
    )
    assert r.exit_code == 2 and "cannot be combined with --pull" in r.output


def _wb(ws, *args):
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), "dedup", *args])


def test_the_old_name_review_still_works_and_says_it_was_renamed(workspace_factory):
    ws = workspace_factory()
    new, old = _wb(ws, "adjudicate", "--json"), _wb(ws, "review", "--json")
    assert (old.exit_code, old.stdout) == (new.exit_code, new.stdout) == (0, new.stdout)
    assert "no open conflict groups to adjudicate" in old.stdout
    assert old.stderr.strip() == (
        "`wb dedup review` is now `wb dedup adjudicate`; the old name works until workbench 0.2"
    )
    assert new.stderr == ""
    bad = _wb(ws, "review", "--pull", "--new-project")  # the same options and checks
    assert bad.exit_code == 2 and "cannot be combined with --pull" in bad.output
    assert "review" not in _wb(ws, "--help").output  # hidden; adjudicate is listed
    assert "adjudicate" in _wb(ws, "--help").output


def test_adjudicate_pull_without_a_reachable_label_studio_fails_with_exit_1(
    workspace_factory, monkeypatch
):
    from workbench.services import free_port

    ws = workspace_factory()
    monkeypatch.setenv("WB_LS_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    r = _wb(ws, "adjudicate", "--pull")
    assert r.exit_code == 1
    assert "Label Studio is not reachable" in r.output and "wb ls start" in r.output
