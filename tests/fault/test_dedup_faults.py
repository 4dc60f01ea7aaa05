"""kill -9 during `wb dedup`: after the hashes are stored, and inside the transaction
that writes groups and statuses (a first run, and a re-run over finished groups). The
next run ends exactly where a clean run ends."""

import pytest
from faultkit import assert_same_state, catalog_state, wb_json, wb_killed, wb_ok

DEDUP = ("dedup", "--workers", "1", "--no-progress")


def _ingested(small_demo, ws):
    wb_ok(ws, "init")
    wb_ok(ws, "ingest", str(small_demo / "images"))
    return ws


@pytest.fixture(scope="module")
def clean(small_demo, module_tmp):
    ws = _ingested(small_demo, module_tmp.mktemp("clean-dedup") / "ws")
    report = wb_json(ws, *DEDUP)
    groups = report["summary"]["duplicate_groups"] + report["summary"]["conflict_groups"]
    assert groups >= 3, "the demo data plants duplicates and conflicts"
    return catalog_state(ws), groups


def test_dedup_killed_after_hashing_and_twice_while_grouping_then_rerun(
    small_demo, clean, tmp_path
):
    want, groups = clean
    ws = _ingested(small_demo, tmp_path / "ws")
    before = catalog_state(ws)

    wb_killed(ws, *DEDUP, fault="dedup.hashed:1")
    hashed = catalog_state(ws)
    assert len(hashed["image_hashes"]) == 2 * len(want["images"])  # full and centre view
    assert hashed["dup_groups"] == [] and hashed["images"] == before["images"]

    for at in (1, groups - 1):  # the first group, the one before last
        wb_killed(ws, *DEDUP, fault=f"dedup.grouped:{at}")
        state = catalog_state(ws)
        # all groups or none: the killed transaction left no group and no status
        assert state["dup_groups"] == [] and state["images"] == before["images"]

    report = wb_json(ws, *DEDUP)
    assert report["summary"]["hashed_cached"] == len(want["images"])  # nothing hashed twice
    assert_same_state(catalog_state(ws), want)


def test_a_dedup_rerun_killed_while_grouping_keeps_the_finished_groups(small_demo, clean, tmp_path):
    want, groups = clean
    ws = _ingested(small_demo, tmp_path / "ws")
    wb_ok(ws, *DEDUP)
    assert_same_state(catalog_state(ws), want)

    wb_killed(ws, *DEDUP, fault=f"dedup.grouped:{groups // 2}")
    assert_same_state(catalog_state(ws), want)
    wb_ok(ws, *DEDUP)
    assert_same_state(catalog_state(ws), want)
