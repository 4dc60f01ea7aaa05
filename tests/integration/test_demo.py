"""`wb demo` runs the whole loop end to end against the real services, as the README's
first command does (here with a small budget), and stops every server it started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _listening(url: str) -> bool:
    host, port = url.rsplit("//", 1)[-1].split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port.strip("/")))) == 0


@pytest.mark.timeout(1500)  # the demo's own subprocess limit, above pytest's default 900 s
def test_demo_runs_the_loop_and_stops_what_it_started(tmp_path):
    from workbench.labelstudio import server

    try:
        server.find_executable()
    except server.LabelStudioNotInstalled as exc:
        pytest.skip(f"the demo needs the Label Studio server: {exc}")
    ws = tmp_path / "demo-ws"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "-w",
            str(ws),
            "demo",
            "--epochs",
            "1",
            "--epochs-round2",
            "1",
            "--images",
            "120",
            "--seed-batch",
            "60",
            "--second-batch",
            "12",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    s = json.loads(proc.stdout)

    # what was found, what was trained, where to look
    assert s["dedup"]["duplicate_groups"] >= s["data"]["planted_exact"] > 0
    assert s["dedup"]["conflict_groups"] >= 1
    assert s["labelstudio"]["tasks"] > 0
    versions = [r["version"] for r in s["rounds"]]
    assert len(versions) == 2 and all(versions) and versions[0] != versions[1]
    assert s["rounds"][1]["annotated"] > s["rounds"][0]["annotated"]
    assert set(s["comparison"]) == set(versions)
    assert s["prioritize"]["first_task_is_most_uncertain"] is True
    # every ground-truth box the annotators submitted is accounted for, per round
    for r in s["rounds"]:
        k = r["corrections"]
        assert k["boxes"] > 0 and k["kept"] + k["moved"] + k["added"] == k["boxes"]
        assert k["from_predrawn"] == k["kept"] + k["moved"] and r["epochs"] == 1
    assert s["rounds"][0]["corrections"]["from_predrawn"] == 0  # no model before round 1
    # round 2's hours saved, from what `wb pull` recorded of the annotators' work
    e = s["rounds"][1]["economics"]
    assert e["tasks"] == s["prioritize"]["handed_out"] and e["with_predrawn"] > 0
    assert e["kept"] + e["moved"] + e["relabelled"] + e["new"] == e["final_boxes"]
    assert e["seconds_per_box"]["source"] == "measured"  # on round 1, drawn from scratch
    assert e["hours_saved"] is not None and "simulated by its annotators" in e["line"]
    assert set(s["review"]["evaluations"]) == set(versions)
    assert s["review"]["samples"] > 0 and "missed-ground-truth" in s["review"]["views"]
    assert "likely-label-errors" in s["review"]["views"]  # wb review errors' view
    # the final model explained on test photos, its heatmaps in the review
    assert s["explain"]["version"] == versions[-1] and s["explain"]["detections"] > 0
    assert Path(s["explain"]["sheet"]).is_file()
    assert "right-class-wrong-evidence" in s["review"]["views"]

    listed = subprocess.run(
        [sys.executable, "-m", "workbench", "-w", str(ws), "models", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert {m["version"] for m in json.loads(listed.stdout)} >= set(versions)

    # every server it started is stopped: Label Studio, the ML backend, FiftyOne's database
    assert not (ws / "services" / "labelstudio.json").exists()
    for url in (s["services"]["labelstudio"], s["services"]["backend"]):
        assert not _listening(url), f"{url} still answers after the demo"
    leftovers = subprocess.run(
        ["pgrep", "-f", str(ws)], capture_output=True, text=True
    ).stdout.split()
    assert [p for p in leftovers if _alive(int(p))] == []
