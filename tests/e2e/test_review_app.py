"""`wb review` serves the FiftyOne App; headless Chromium really shows the dataset.

Runs the real command in its own process (as a user would), reads the printed
URLs, renders the App and a saved view in Debian's ``chromium``, keeps the
screenshot under ``test-artifacts/``, then stops ``wb`` with Ctrl-C (SIGINT) and
checks that every process it started (worker, MongoDB, App server) is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from review_cases import build_case  # noqa: E402 (after the sys.path line)

from workbench.services import free_port  # noqa: E402 (after the sys.path line)
from workbench.taxonomy import Taxonomy  # noqa: E402 (after the sys.path line)
from workbench.workspace import Workspace  # noqa: E402 (after the sys.path line)

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(400)]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
]


def _chromium(url: str, tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    result = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _page_text(dom: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", dom).split())


def _page_text_showing(url: str, tmp_path: Path, pattern: str, tries: int = 4) -> str:
    """The page's text once it shows ``pattern``: on a loaded machine the App can still be
    loading ("Pixelating") when the virtual time budget runs out, so render again."""
    for _ in range(tries):
        text = _page_text(_chromium(url, tmp_path, "--dump-dom"))
        if re.search(pattern, text):
            break
        time.sleep(3)
    return text


def _tree(pid: int) -> list:
    psutil = pytest.importorskip("psutil")
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


@pytest.fixture
def review_workspace(tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.flat(["ivory", "resin"]))
    ids = build_case(ws, tmp_path / "images")
    return ws, ids


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium)"
)
def test_app_shows_the_dataset_and_its_saved_views_then_stops_cleanly(review_workspace, tmp_path):
    ws, _ids = review_workspace
    port = free_port()
    wb = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from workbench.cli import main; main()",
            "-w",
            str(ws.root),
            "review",
            "--port",
            str(port),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path / "home")},
    )
    printed = []
    try:
        for line in wb.stdout:
            printed.append(line)
            if "Ctrl-C to stop" in line or line.startswith("Error"):
                break
        output = "".join(printed)
        app_url = re.search(r"FiftyOne App: (\S+)", output)
        assert app_url, output
        app_url = app_url.group(1)
        dataset = app_url.rsplit("/", 1)[-1]
        assert app_url.startswith(f"http://127.0.0.1:{port}/datasets/wb-")
        view_url = re.search(r"most-uncertain \(3\)\s+(\S+)", output).group(1)
        assert view_url == f"{app_url}?view=most-uncertain"
        started = _tree(wb.pid)
        names = " ".join(" ".join(p.cmdline()) for p in started)
        assert "mongod" in names and "--51-service server" in names

        # the App's server answers as the page's own requests do
        assert httpx.get(f"http://127.0.0.1:{port}/fiftyone", timeout=10).json()["version"]

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "review_app.png"
        shot.unlink(missing_ok=True)
        _chromium(app_url, tmp_path, f"--screenshot={shot}")
        assert shot.stat().st_size > 10_000
        text = _page_text_showing(app_url, tmp_path, r"\b5 samples\b")
        dom = _chromium(app_url, tmp_path, "--dump-dom")
        assert f'value="{dataset}"' in dom  # the dataset selector shows our dataset
        assert re.search(r"\b5 samples\b", text), text[:2000]
        # a saved view opens by its URL and shows only its samples
        view_text = _page_text_showing(view_url, tmp_path, r"\b3 samples\b")
        assert re.search(r"\b3 samples\b", view_text), view_text[:2000]
        _chromium(view_url, tmp_path, f"--screenshot={ARTIFACTS / 'review_app_view.png'}")
    finally:
        if wb.poll() is None:
            wb.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        code = wb.wait(timeout=90)
    rest = wb.stdout.read()
    wb.stdout.close()
    assert code == 0, "".join(printed) + rest
    deadline = time.monotonic() + 30
    while any(p.is_running() and p.status() != "zombie" for p in started):
        assert time.monotonic() < deadline, [p.cmdline() for p in started if p.is_running()]
        time.sleep(0.5)
    assert not (ws.services_dir / "fiftyone" / "mongod.json").exists()
    # the App writes ~/.fiftyone whatever its settings: it went to the workspace
    assert (ws.services_dir / "fiftyone" / "home" / ".fiftyone").is_dir()
    assert not (tmp_path / "home" / ".fiftyone").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/fiftyone", timeout=5)
