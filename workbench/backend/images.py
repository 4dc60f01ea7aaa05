"""From a task's image URL to an EXIF-corrected PIL image, safely.

- ``/data/local-files/?d=REL``: the file ``REL`` under the served root only. A path
  that leaves the root (``..``, an absolute path, a symlink out) is refused and logged.
- ``/data/upload/...`` (files uploaded to Label Studio) and any URL on Label Studio's
  own host: fetched from Label Studio with its API token.
- other ``http(s)://`` URLs: fetched without credentials, only from the hosts
  ``image_hosts.ImageHosts`` allows (no loopback, link-local or private address unless
  the workspace allows it); redirects are followed one checked hop at a time.

Fetches stop at ``max_bytes`` and ``timeout`` seconds. Every failure is an
``ImageError`` with the HTTP status that task's problem gets (always 4xx: the task
points at something we will not or cannot read).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

from PIL import Image

from ..images import UnreadableImage, open_image
from .image_hosts import HostRefused, ImageHosts, Target

logger = logging.getLogger(__name__)

LOCAL_FILES_PATH = "/data/local-files/"
UPLOAD_PREFIX = "/data/upload/"
MAX_REDIRECTS = 5


class ImageError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ResolvedImage:
    image: Image.Image
    path: Path | None  # the local file, when the image is one


class ImageResolver:
    def __init__(
        self,
        document_root: Path | str | None = None,
        ls_url: str | None = None,
        ls_token: str | None = None,
        max_bytes: int = 30 * 1024 * 1024,
        timeout: float = 10.0,
        allowed_hosts: tuple[str, ...] | list[str] = (),
        hosts: ImageHosts | None = None,
    ):
        self.document_root = Path(document_root).resolve() if document_root else None
        self.ls_url = ls_url.rstrip("/") if ls_url else None
        self.ls_token = ls_token
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.hosts = hosts or ImageHosts([self.ls_url], allowed_hosts)

    def with_label_studio(self, url: str | None, token: str | None) -> ImageResolver:
        """A resolver that uses the Label Studio host and token ``/setup`` sent where
        none was configured (that host is then Label Studio's, trusted as such; a
        configured URL is never replaced, so a caller of /setup cannot widen the hosts
        images are fetched from)."""
        if self.ls_url and self.ls_token:
            return self
        ls_url = self.ls_url or (url.rstrip("/") if url else None)
        return ImageResolver(
            self.document_root,
            ls_url,
            self.ls_token or token,
            self.max_bytes,
            self.timeout,
            hosts=self.hosts.with_trusted(ls_url),
        )

    def open(self, url: object) -> ResolvedImage:
        if not isinstance(url, str) or not url.strip():
            raise ImageError(422, "the task has no image URL")
        parts = urlsplit(url.strip())
        if parts.path.rstrip("/").endswith(LOCAL_FILES_PATH.rstrip("/")):
            path = self.local_path(parts.query)
            return ResolvedImage(self._open_file(path), path)
        if parts.scheme in ("", None) and parts.path.startswith("/"):
            if self.ls_url is None:
                raise ImageError(
                    422,
                    f"{parts.path} is a Label Studio URL but the backend "
                    "does not know Label Studio's address; give it "
                    "WB_LS_URL or connect with `wb serve --connect`",
                )
            return ResolvedImage(
                self._fetch(urljoin(self.ls_url + "/", url.lstrip("/")), with_token=True), None
            )
        if parts.scheme in ("http", "https") and parts.netloc:
            return ResolvedImage(self._fetch(url.strip(), with_token=True), None)
        raise ImageError(
            422,
            f"unsupported image URL {url[:200]!r}: use Label Studio local "
            "files, uploads or http(s) URLs",
        )

    def local_path(self, query: str) -> Path:
        """The file a local-files query names, inside the document root only."""
        if self.document_root is None:
            raise ImageError(
                422,
                "the task uses Label Studio local files but the backend has "
                "no document root; set [labelstudio] document_root or "
                "WB_LS_DOCUMENT_ROOT",
            )
        values = parse_qs(query, keep_blank_values=True).get("d") or []
        rel = values[0] if values else ""  # decoded once, as Label Studio decodes it
        if not rel or "\x00" in rel:
            raise ImageError(422, "the local-files URL has no file (?d=...)")
        candidate = (self.document_root / rel).resolve()
        if os.path.isabs(rel) or not candidate.is_relative_to(self.document_root):
            logger.warning(
                "refused an image path outside the served root %s: %r",
                self.document_root,
                rel[:300],
            )
            raise ImageError(403, "the image path leaves the served folder; refused")
        if not candidate.is_file():
            raise ImageError(404, f"no image at {rel[:300]} under the served folder")
        return candidate

    def _open_file(self, path: Path) -> Image.Image:
        try:
            return open_image(path)
        except UnreadableImage as exc:
            raise ImageError(422, f"unreadable image {path.name}: {exc.reason}") from None

    def _fetch(self, url: str, with_token: bool) -> Image.Image:
        """GET an image. The token goes only to Label Studio's own origin; every hop
        (the URL, then each redirect) is checked by ``self.hosts`` first."""
        import httpx

        for _ in range(MAX_REDIRECTS + 1):
            try:
                target = self.hosts.check(url)
            except HostRefused as exc:
                logger.warning("refused an image URL: %s", exc)
                raise ImageError(403, str(exc)) from None
            token = self.ls_token if with_token and self.hosts.is_trusted(url) else None
            try:
                with _stream(target, token, self.timeout) as resp:
                    if resp.is_redirect and resp.headers.get("location"):
                        url = urljoin(url, resp.headers["location"])
                        continue
                    return self._read(resp)
            except httpx.HTTPError as exc:
                raise ImageError(422, f"could not fetch the image ({type(exc).__name__})") from None
        raise ImageError(422, f"fetching the image failed: more than {MAX_REDIRECTS} redirects")

    def _read(self, resp) -> Image.Image:
        if resp.status_code != 200:
            raise ImageError(
                422 if resp.status_code != 404 else 404,
                f"fetching the image failed: HTTP {resp.status_code}",
            )
        size = int(resp.headers.get("content-length") or 0)
        if size > self.max_bytes:
            raise ImageError(
                413, f"the image is {size} bytes, over the {self.max_bytes}-byte limit"
            )
        with tempfile.NamedTemporaryFile(prefix="wb-serve-", suffix=".img") as tmp:
            got = 0
            for chunk in resp.iter_bytes():
                got += len(chunk)
                if got > self.max_bytes:
                    raise ImageError(413, f"the image is over the {self.max_bytes}-byte limit")
                tmp.write(chunk)
            tmp.flush()
            try:
                return open_image(tmp.name)
            except UnreadableImage as exc:
                raise ImageError(
                    422, f"the fetched file is not a readable image: {exc.reason}"
                ) from None


@contextmanager
def _stream(target: Target, token: str | None, timeout: float) -> Iterator:
    """One GET, without following redirects. A checked address is connected to as is
    (the Host header and the TLS name stay the URL's), so the name is not resolved
    again between the check and the connect."""
    import httpx

    headers = {"Authorization": f"Token {token}"} if token else {}
    url, extensions = target.url, {}
    if target.address is not None:
        parts = urlsplit(target.url)
        ip = f"[{target.address}]" if ":" in target.address else target.address
        url = parts._replace(netloc=f"{ip}:{target.port}").geturl()
        headers["Host"] = parts.netloc.rpartition("@")[2]
        if parts.scheme == "https":
            extensions["sni_hostname"] = target.host
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        request = client.build_request("GET", url, headers=headers, extensions=extensions)
        resp = client.send(request, stream=True)
        try:
            yield resp
        finally:
            resp.close()
