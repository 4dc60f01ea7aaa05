"""The SSRF guard: which hosts the backend fetches task images from (image_hosts.py),
as rules and over real HTTP against listeners on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager

import pytest
from PIL import Image

from workbench.backend.image_hosts import SETTING, HostRefused, ImageHosts, address_refusal
from workbench.backend.images import ImageError, ImageResolver
from workbench.errors import WorkbenchError


@pytest.mark.parametrize(
    "address, why",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 is the IPv4 address
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT
        ("240.0.0.1", "reserved"),
        ("8.8.8.8", None),
        ("172.32.0.1", None),  # just outside 172.16/12
        ("2606:4700::1111", None),
    ],
)
def test_address_rules(address, why):
    got = address_refusal(address)
    assert (got is None) if why is None else (why in got)


def fixed(table: dict[str, list[str]]):
    calls = []

    def resolve(host, port):
        calls.append(host)
        if host not in table:
            raise OSError(f"{host}: Name or service not known")
        return table[host]

    resolve.calls = calls
    return resolve


def test_label_studio_s_own_origin_is_trusted_even_on_loopback():
    hosts = ImageHosts(["http://127.0.0.1:8080"], resolve=fixed({}))
    assert hosts.check("http://127.0.0.1:8080/data/upload/1/a.jpg").address is None
    with pytest.raises(HostRefused, match="loopback"):
        hosts.check("http://127.0.0.1:8081/a.jpg")  # another port is another service
    setup = hosts.with_trusted("http://localhost:8080")  # the hostname /setup sent
    assert setup.check("http://localhost:8080/a.jpg").address is None
    assert hosts.with_trusted(None) is hosts


def test_the_setup_hostname_is_trusted_only_when_no_label_studio_url_is_configured():
    unconfigured = ImageResolver().with_label_studio("http://localhost:8080", "tok")
    assert unconfigured.hosts.is_trusted("http://localhost:8080/data/upload/1/a.jpg")
    assert unconfigured.ls_url == "http://localhost:8080" and unconfigured.ls_token == "tok"
    configured = ImageResolver(ls_url="http://127.0.0.1:8080")
    widened = configured.with_label_studio("http://169.254.169.254", "tok")
    assert not widened.hosts.is_trusted("http://169.254.169.254/latest/meta-data")
    assert widened.hosts.is_trusted("http://127.0.0.1:8080/data/upload/1/a.jpg")


def test_every_resolved_address_is_checked_and_the_checked_one_is_connected_to():
    resolve = fixed({"cdn.example": ["93.184.216.34"], "rebind.example": ["8.8.8.8", "10.0.0.7"]})
    hosts = ImageHosts(resolve=resolve)
    target = hosts.check("https://cdn.example/a.jpg")
    assert (target.address, target.host, target.port) == ("93.184.216.34", "cdn.example", 443)
    with pytest.raises(HostRefused) as refused:
        hosts.check("http://rebind.example/a.jpg")
    message = str(refused.value)
    assert "rebind.example (10.0.0.7)" in message and "a private address" in message
    assert f"add 'rebind.example' to {SETTING} in workbench.toml" in message
    assert resolve.calls == ["cdn.example", "rebind.example"]  # resolved once per URL


@pytest.mark.parametrize(
    "allowed, url, ok",
    [
        (["images.internal"], "http://images.internal:9000/a.jpg", True),  # any port
        (["images.internal:9000"], "http://images.internal:9000/a.jpg", True),
        (["images.internal:9000"], "http://images.internal:9001/a.jpg", False),
        (["IMAGES.internal"], "http://images.INTERNAL/a.jpg", True),
        (["10.0.0.0/8"], "http://10.2.3.4/a.jpg", True),
        (["10.0.0.0/8"], "http://192.168.0.2/a.jpg", False),
        (["10.0.0.5"], "http://10.0.0.5/a.jpg", True),
        (["fc00::/7"], "http://[fd00::5]/a.jpg", True),
        (["10.0.0.0/8"], "http://nas.lan/a.jpg", True),  # nas.lan resolves into the network
        ([], "http://nas.lan/a.jpg", False),
    ],
)
def test_the_workspace_allows_hosts_addresses_and_networks(allowed, url, ok):
    hosts = ImageHosts(allowed=allowed, resolve=fixed({"nas.lan": ["10.9.9.9"]}))
    if ok:
        hosts.check(url)
    else:
        with pytest.raises(HostRefused):
            hosts.check(url)


@pytest.mark.parametrize("entry", ["", "a b", "http://x/y", "host:port:x", 7])
def test_a_malformed_allowed_entry_is_refused_at_start(entry):
    with pytest.raises(WorkbenchError, match="allowed_image_hosts"):
        ImageHosts(allowed=[entry])


def test_a_name_that_does_not_resolve_is_refused_with_its_name():
    def fail(host, port):
        raise OSError("Name or service not known")

    with pytest.raises(HostRefused, match="could not resolve the image host nowhere.example"):
        ImageHosts(resolve=fail).check("http://nowhere.example/a.jpg")


class Listener:
    """An http server on 127.0.0.1 that records every request it sees."""

    def __init__(self, tmp_path, redirect_to: str | None = None):
        self.requests: list[tuple[str, str | None]] = []
        image = tmp_path / "a.png"
        Image.new("RGB", (30, 20), (10, 200, 10)).save(image)
        body = image.read_bytes()
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                seen.append((self.path, self.headers.get("Host")))
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    @contextmanager
    def running(self):
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def test_a_local_listener_that_is_not_allowed_is_never_asked(tmp_path):
    with Listener(tmp_path).running() as listener:
        resolver = ImageResolver(ls_url="http://127.0.0.1:1")
        with pytest.raises(ImageError) as refused:
            resolver.open(f"{listener.url}/a.png")
        allowed = ImageResolver(allowed_hosts=[f"127.0.0.1:{listener.port}"])
        assert allowed.open(f"{listener.url}/a.png").image.size == (30, 20)
    assert refused.value.status == 403
    assert "127.0.0.1: a loopback address" in refused.value.message
    assert "allowed_image_hosts" in refused.value.message
    assert listener.requests == [("/a.png", f"127.0.0.1:{listener.port}")]  # only the allowed


def test_a_redirect_to_a_host_not_allowed_is_not_followed(tmp_path):
    with Listener(tmp_path).running() as inner:
        with Listener(tmp_path, redirect_to=f"{inner.url}/a.png").running() as outer:
            resolver = ImageResolver(allowed_hosts=[f"127.0.0.1:{outer.port}"])
            with pytest.raises(ImageError) as refused:
                resolver.open(f"{outer.url}/start.png")
            both = ImageResolver(allowed_hosts=[f"127.0.0.1:{outer.port}", "127.0.0.1"])
            assert both.open(f"{outer.url}/start.png").image.size == (30, 20)
    assert refused.value.status == 403 and "loopback" in refused.value.message
    assert [path for path, _ in outer.requests] == ["/start.png", "/start.png"]
    assert [path for path, _ in inner.requests] == ["/a.png"]  # only after it was allowed


def test_a_checked_address_is_connected_to_with_the_url_s_host_name(tmp_path):
    """DNS rebinding: the name is resolved once, and that address is the one connected
    to; the server still sees the name in the Host header."""
    with Listener(tmp_path).running() as listener:
        resolve = fixed({"photos.test": ["127.0.0.1"]})
        hosts = ImageHosts(allowed=["127.0.0.0/8"], resolve=resolve)
        resolver = ImageResolver(hosts=hosts)
        assert resolver.open(f"http://photos.test:{listener.port}/a.png").image.size == (30, 20)
    assert resolve.calls == ["photos.test"]
    assert listener.requests == [("/a.png", f"photos.test:{listener.port}")]


def test_predict_answers_a_refused_url_with_a_403_item_and_keeps_the_batch(tmp_path):
    import torch
    from fastapi.testclient import TestClient

    from workbench.backend import BackendSettings, ModelHolder, create_app
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(1)
    ws = Workspace.create(tmp_path / "ws", Taxonomy.flat(["cat", "dog"]))
    with ws.open_catalog() as catalog:
        register_untrained_model(ws, catalog, ["cat", "dog"], promote=True)
    holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=0)
    with Listener(tmp_path).running() as ls, Listener(tmp_path).running() as other:
        client = TestClient(
            create_app(holder, ws.open_catalog, BackendSettings(ls_url=ls.url, ls_token="tok"))
        )
        res = client.post(
            "/predict",
            json={
                "tasks": [
                    {"id": 1, "data": {"image": f"{other.url}/a.png"}},
                    {"id": 2, "data": {"image": f"{ls.url}/a.png"}},
                    {"id": 3, "data": {"image": "http://169.254.169.254/latest/meta-data"}},
                ]
            },
        )
    assert res.status_code == 200
    refused, fetched, metadata = res.json()["results"]
    assert refused["status"] == 403 and "result" not in refused
    assert "127.0.0.1: a loopback address" in refused["error"]
    assert "result" in fetched and "error" not in fetched
    assert metadata["status"] == 403 and "link-local" in metadata["error"]
    assert other.requests == []  # the listener not allowed saw nothing
    assert [path for path, _ in ls.requests] == ["/a.png"]  # Label Studio's host is fetched


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:9/a.jpg",
        "http://2130706433/a.jpg",  # 127.0.0.1 as one decimal number
        "http://0/a.jpg",
        "http://[::1]:9/a.jpg",
        "http://user:pw@127.0.0.1/a.jpg",
    ],
)
def test_spellings_of_this_machine_are_refused_after_real_resolution(url):
    with pytest.raises(HostRefused, match="loopback|unspecified"):
        ImageHosts().check(url)
