"""The ML backend's image fetching against real servers: a file uploaded to Label Studio
(``/data/upload/...``, fetched with the API token) and a plain http URL on another
server (fetched without it, and only once the workspace allows that host: it listens on
127.0.0.1, which the SSRF guard refuses by default)."""

from __future__ import annotations

import functools
import http.server
import threading

import httpx
import pytest
from PIL import Image

from workbench.backend.images import ImageError, ImageResolver

pytestmark = pytest.mark.integration


def _photo(path, size=(90, 60), colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=92)
    return path


def test_an_image_uploaded_to_label_studio_is_fetched_with_the_token(label_studio, tmp_path):
    ls = label_studio.client
    project = ls.projects.create(
        title="upload fetch", label_config='<View><Image name="image" value="$image"/></View>'
    )
    photo = _photo(tmp_path / "uploaded photo.jpg")
    with photo.open("rb") as fh:
        r = httpx.post(
            f"{label_studio.url}/api/projects/{project.id}/import",
            headers={"Authorization": f"Token {label_studio.token}"},
            files={"file": (photo.name, fh, "image/jpeg")},
            timeout=60,
        )
    assert r.status_code == 201, r.text
    (task,) = list(ls.tasks.list(project=project.id, fields="all"))
    url = task.data["image"]
    assert url.startswith("/data/upload/")

    got = ImageResolver(ls_url=label_studio.url, ls_token=label_studio.token).open(url)
    assert got.image.size == (90, 60) and got.path is None
    assert got.image.getpixel((45, 30))[0] > 150  # the red photo, not an error page
    # the same URL, absolute, on Label Studio's host: the token goes with it too
    absolute = ImageResolver(ls_url=label_studio.url, ls_token=label_studio.token).open(
        label_studio.url + url
    )
    assert absolute.image.size == (90, 60)
    # without the token Label Studio refuses: a clear 4xx, not a crash
    with pytest.raises(ImageError) as err:
        ImageResolver(ls_url=label_studio.url, ls_token="wrong-token").open(url)
    assert err.value.status in (404, 422) and "HTTP" in err.value.message
    ls.projects.delete(id=project.id)


def test_an_http_image_on_another_server_is_fetched_without_credentials(tmp_path):
    _photo(tmp_path / "www" / "a.jpg", size=(40, 70))
    (tmp_path / "www" / "not-an-image.jpg").write_text("<html>nope</html>")
    seen_auth = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen_auth.append(self.headers.get("Authorization"))
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path / "www"))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    base = f"http://127.0.0.1:{port}"
    try:
        refused = ImageResolver(ls_url="http://127.0.0.1:1", ls_token="secret")
        with pytest.raises(ImageError) as guard:
            refused.open(f"{base}/a.jpg")
        assert guard.value.status == 403 and "allowed_image_hosts" in guard.value.message
        assert seen_auth == []  # not allowed: never asked
        allowed = [f"127.0.0.1:{port}"]
        resolver = ImageResolver(
            ls_url="http://127.0.0.1:1", ls_token="secret", allowed_hosts=allowed
        )
        assert resolver.open(f"{base}/a.jpg").image.size == (40, 70)
        assert seen_auth == [None]  # Label Studio's token never leaves for other hosts
        with pytest.raises(ImageError) as missing:
            resolver.open(f"{base}/missing.jpg")
        assert missing.value.status == 404
        with pytest.raises(ImageError) as bad:
            resolver.open(f"{base}/not-an-image.jpg")
        assert bad.value.status == 422 and "not a readable image" in bad.value.message
        small = ImageResolver(max_bytes=100, allowed_hosts=allowed)
        with pytest.raises(ImageError) as big:
            small.open(f"{base}/a.jpg")
        assert big.value.status == 413
    finally:
        server.shutdown()
        server.server_close()
