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
    assert status["boxes"]["total"] == n_objects
    # one photo in this set is a truncated JPEG: kept in the catalog as unreadable, boxes kept
    unreadable = status["images"]["by_status"].get("unreadable", 0)
    assert status["images"]["by_status"]["active"] + unreadable == n_images

    out = tmp_path / "k.json"
    r = wb("-w", ws, "export", "--format", "coco", "--out", out)
    assert r.exit_code == 0, r.output
    coco = COCO(str(out))
    assert len(coco.getImgIds()) == n_images - unreadable
    exported_boxes = len(coco.getAnnIds())
    with_boxes_of_unreadable = n_objects - exported_boxes
    assert 0 <= with_boxes_of_unreadable <= 10 * unreadable

    r = wb("-w", ws, "ingest", kangaroo_dir, "--format", "voc", "--json")
    res = json.loads(r.output)
    assert res["added"] == 0 and res["updated"] == 0 and res["unchanged"] == n_images
    again = json.loads(wb("-w", ws, "status", "--json").output)
    assert again == status
