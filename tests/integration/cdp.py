"""Headless Chromium driven over the DevTools protocol (no Selenium, no driver binary).

``--dump-dom`` is enough for pages anyone may open (the FiftyOne App); Label Studio's
pages need a logged-in session, so these tests log in through the real login form and
then read the rendered page and take a screenshot, over one DevTools websocket::

    with Browser(tmp_path) as page:
        page.goto(url)
        page.wait_for("document.body.innerText.includes('Regions')")
        page.screenshot(path)
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium (its own profile under ``tmp``) and its first page."""

    def __init__(self, tmp: Path, width: int = 1600, height: int = 1000):
        if CHROMIUM is None:
            raise BrowserError("Debian chromium is not installed (apt-get install -y chromium)")
        self.profile = Path(tmp) / f"chromium-cdp-{time.monotonic_ns()}"
        self.profile.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--window-size={width},{height}",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._ids = itertools.count(1)
        self.ws = None

    # ---- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Browser:
        import websocket

        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited: {self.proc.stderr.read()[-2000:]!r}")
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self.call("Page.enable")
        self.call("Runtime.enable")
        return self

    def __exit__(self, *exc) -> None:
        if self.ws is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)

    # ---- protocol ----------------------------------------------------------------
    def call(self, method: str, **params) -> dict:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str):
        res = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression[:80]}: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    # ---- what a test does ----------------------------------------------------------
    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout=60)

    def wait_for(self, expression: str, timeout: float = 90, poll: float = 0.5):
        """The expression's value once it is truthy (a rendered page), else an error that
        shows what the page says."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except BrowserError:
                value = None  # mid-navigation: the context is being replaced
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''") or ""
                raise BrowserError(
                    f"timed out waiting for {expression!r}; the page says: "
                    f"{' '.join(text.split())[:1500]}"
                )
            time.sleep(poll)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
