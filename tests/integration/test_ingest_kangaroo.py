"""Ingest the real kangaroo photos (Pascal VOC) as a user would, through `wb`."""

import json
import re

import pytest
from click.testing import CliRunner

from workbench.cli import cli

pytestmark = pytest.mark.integration


def wb(*args):
    r = CliRunner().invoke(cli, list(map(str, args)))
    return r


def test_kangaroo_voc_ingest_status_export_reingest(tmp_path, kangaroo_dir):
    from pycocotools.coco import COCO

    n_objects = sum(
        len(re.findall(r"<object>", p.read_text())) for p in (kangaroo_dir / "annots").glob("*.xml")
    )
    n_images = len(list((kangaroo_dir / "images").glob("*.jpg")))
    ws = tmp_path / "ws"
    assert wb("-w", ws, "init", "--classes", "kangaroo").exit_code == 0
    r = wb("-w", ws, "ingest", kangaroo_dir, "--format", "voc")
    assert r.exit_code == 0, r.output
    status = json.loads(wb("-w", ws, "status", "--json").output)
    assert status["images"]["total"] == n_images == 164
    # one photo in this set is a truncated JPEG: kept in the catalog as unreadable, its
    # boxes stored but counted nowhere (not in status, not annotated, not exported)
    unreadable = status["images"]["by_status"].get("unreadable", 0)
    assert status["images"]["by_status"]["active"] + unreadable == n_images
    bad = json.loads(wb("-w", ws, "status", "--unreadable", "--json").output)["unreadable"]
    boxes_of_bad = sum(
        len(re.findall(r"<object>", (kangaroo_dir / "annots" / f"{stem}.xml").read_text()))
        for stem in (re.sub(r"\.jpg$", "", b["path"].rsplit("/", 1)[-1]) for b in bad)
    )
    assert unreadable == len(bad) == 1 and boxes_of_bad > 0
    assert status["boxes"]["total"] == n_objects - boxes_of_bad
    # and ingest said so, so its box count and status's agree for the reader
    assert f"({boxes_of_bad} of them on unreadable files: kept, counted nowhere)" in r.output
    assert status["images"]["annotated"] == n_images - unreadable

    out = tmp_path / "k.json"
    r = wb("-w", ws, "export", "--format", "coco", "--out", out)
    assert r.exit_code == 0, r.output
    coco = COCO(str(out))
    assert len(coco.getImgIds()) == n_images - unreadable
    exported_boxes = len(coco.getAnnIds())
    assert exported_boxes == status["boxes"]["total"]

    r = wb("-w", ws, "ingest", kangaroo_dir, "--format", "voc", "--json")
    res = json.loads(r.output)
    assert res["added"] == 0 and res["updated"] == 0 and res["unchanged"] == n_images
    again = json.loads(wb("-w", ws, "status", "--json").output)
    assert again == status
