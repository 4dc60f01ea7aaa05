"""kill -9 during `wb ingest` (class folders and COCO), then the same command again:
the catalog ends exactly as after one clean run, and the re-run says what it kept."""

import pytest
from faultkit import assert_same_state, catalog_state, wb_json, wb_killed, wb_ok

SOURCES = {
    "folders": lambda demo: ["ingest", str(demo / "images")],
    "coco": lambda demo: [
        "ingest",
        str(demo / "annotations.json"),
        "--format",
        "coco",
        "--images",
        str(demo),
    ],
}


@pytest.fixture(scope="module")
def clean(demo_data, module_tmp):
    """Each source ingested once without a fault: what every faulted run must equal."""
    out = {}
    for name, args in SOURCES.items():
        ws = module_tmp.mktemp(f"clean-{name}") / "ws"
        wb_ok(ws, "init")
        summary = wb_json(ws, *args(demo_data))
        out[name] = (catalog_state(ws), summary)
    return out


# the first image, the middle, the one before last (300 demo images)
@pytest.mark.parametrize("stored", [1, 150, 299])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_ingest_killed_after_n_images_then_rerun_equals_a_clean_run(
    source, stored, demo_data, clean, tmp_path
):
    want, clean_summary = clean[source]
    total = clean_summary["added"]
    ws = tmp_path / "ws"
    wb_ok(ws, "init")
    args = SOURCES[source](demo_data)

    wb_killed(ws, *args, fault=f"ingest.stored:{stored}")
    assert len(catalog_state(ws)["images"]) == stored  # each image is its own commit

    again = wb_json(ws, *args)
    assert (again["added"], again["unchanged"]) == (total - stored, stored)
    assert_same_state(catalog_state(ws), want)
    # the whole import's boxes are in, none twice (the re-run counts only its own)
    assert again["boxes_added"] <= clean_summary["boxes_added"]
