"""Schemathesis against a real `wb serve --token` over HTTP, authentication on: every
check it has (no 5xx, each status, content type, header and body stated by the schema,
schema-valid bodies accepted and invalid ones refused, routes behind auth refusing
requests without it). Bounded: a fixed number of examples per operation and a fixed
seed, one worker; about 15 s of fuzzing on 2 shared cores.

By hand, against a running server:

    schemathesis run http://127.0.0.1:9090/openapi.json -c all \\
        -H "Authorization: Bearer T0ken" -n 20 --seed 16 -w 1 --generation-database none
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TOKEN = "fuzz-T0ken"
MAX_EXAMPLES = 20
SEED = 16


@pytest.fixture
def served(workspace_factory, tmp_path):
    """`wb serve --token` as a child process, on a free port, with a promoted model."""
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.services import free_port, spawn

    ws = workspace_factory(classes=["cat", "dog"])
    with ws.open_catalog() as catalog:
        register_untrained_model(ws, catalog, ["cat", "dog"], promote=True)
    root = tmp_path / "files"
    root.mkdir()
    Image.new("RGB", (64, 48), (90, 140, 200)).save(root / "a.png")
    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "WB_LS_URL": "http://127.0.0.1:1",  # no Label Studio: nothing to reach
        "WB_LS_TOKEN": "unused",
        "WB_LS_DOCUMENT_ROOT": str(root),
    }
    argv = [sys.executable, "-m", "workbench", "-w", str(ws.root), "serve"]
    argv += ["--token", TOKEN, "--port", str(port), "--poll-seconds", "60"]
    proc = spawn("wb serve", argv, tmp_path / "serve.log", env=env)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        proc.wait_healthy(healthy, timeout=120, interval=0.5)
        yield url, tmp_path / "serve.log"
    finally:
        proc.stop()


def test_schemathesis_finds_nothing_against_wb_serve_with_a_token(served, tmp_path):
    url, log = served
    # authentication is really on, and the schema says so
    assert httpx.post(f"{url}/setup", json={}, timeout=10).status_code == 401
    schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
    assert schema["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }

    report = tmp_path / "schemathesis.json"
    argv = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json"]
    argv += ["--checks", "all", "--header", f"Authorization: Bearer {TOKEN}"]
    argv += ["--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1"]
    argv += ["--generation-database", "none", "--request-timeout", "60", "--no-color"]
    argv += ["--report", "json", "--report-json-path", str(report)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=tmp_path)

    output = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, output
    result = json.loads(report.read_text())
    assert result["failures"] == [] and result["errors"] == [], output
    assert result["test_cases"]["with_failures"] == 0
    assert result["operations"]["tested"] == result["operations"]["total"] == 6, output
    assert result["test_cases"]["generated"] >= 5 * 6, output
    served_log = log.read_text()
    assert "Traceback" not in served_log and "unexpected error" not in served_log
