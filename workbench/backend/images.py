"""From a task's image URL to an EXIF-corrected PIL image, safely.

- ``/data/local-files/?d=REL``: the file ``REL`` under the served root only. A path
  that leaves the root (``..``, an absolute path, a symlink out) is refused and logged.
- ``/data/upload/...`` (files uploaded to Label Studio) and any URL on Label Studio's
  own host: fetched from Label Studio with its API token.
- other ``http(s)://`` URLs: fetched without credentials.

Fetches stop at ``max_bytes`` and ``timeout`` seconds. Every failure is an
``ImageError`` with the HTTP status the service answers with (always 4xx: the task
points at something we will not or cannot read).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

from PIL import Image

from ..images import UnreadableImage, open_image

logger = logging.getLogger(__name__)

LOCAL_FILES_PATH = "/data/local-files/"
UPLOAD_PREFIX = "/data/upload/"


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
    ):
        self.document_root = Path(document_root).resolve() if document_root else None
        self.ls_url = ls_url.rstrip("/") if ls_url else None
        self.ls_token = ls_token
        self.max_bytes = max_bytes
        self.timeout = timeout

    def with_label_studio(self, url: str | None, token: str | None) -> ImageResolver:
        """A resolver that fills in the Label Studio host and token ``/setup`` sent,
        where none was configured."""
        if self.ls_url and self.ls_token:
            return self
        return ImageResolver(
            self.document_root,
            self.ls_url or url,
            self.ls_token or token,
            self.max_bytes,
            self.timeout,
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
            same_host = self.ls_url is not None and _origin(url) == _origin(self.ls_url)
            return ResolvedImage(self._fetch(url, with_token=same_host), None)
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
        import httpx

        headers = {}
        if with_token and self.ls_token:
            headers["Authorization"] = f"Token {self.ls_token}"
        try:
            with httpx.stream(
                "GET", url, headers=headers, timeout=self.timeout, follow_redirects=True
            ) as resp:
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
                            raise ImageError(
                                413, f"the image is over the {self.max_bytes}-byte limit"
                            )
                        tmp.write(chunk)
                    tmp.flush()
                    try:
                        return open_image(tmp.name)
                    except UnreadableImage as exc:
                        raise ImageError(
                            422, f"the fetched file is not a readable image: {exc.reason}"
                        ) from None
        except httpx.HTTPError as exc:
            raise ImageError(422, f"could not fetch the image ({type(exc).__name__})") from None


def _origin(url: str) -> tuple[str, str]:
    p = urlsplit(url)
    return p.scheme, p.netloc
