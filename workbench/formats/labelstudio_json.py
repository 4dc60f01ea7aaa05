"""A Label Studio JSON export (a list of tasks with annotations).

Image URLs: ``/data/local-files/?d=REL`` resolves under ``--images ROOT``;
``/data/upload/N/name`` and others resolve by file name under ``--images``.
Percent coordinates become pixels with the ``original_width``/``original_height``
stored in each result. The latest non-cancelled annotation of a task wins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from ..catalog.records import Box, ImportedImage


def _resolve(url: str, images_dir: Path | None, json_dir: Path, by_name: dict) -> Path | None:
    parsed = urlparse(url)
    if parsed.path.startswith("/data/local-files"):
        rel = unquote(parse_qs(parsed.query).get("d", [""])[0])
        for base in filter(None, (images_dir, json_dir)):
            cand = base / rel
            if cand.is_file():
                return cand
        if Path("/" + rel).is_file():
            return Path("/" + rel)
    if parsed.scheme in ("", "file") and Path(unquote(parsed.path)).is_file():
        return Path(unquote(parsed.path))
    name = Path(unquote(parsed.path)).name
    if name in by_name:
        return by_name[name]
    # uploads get a random prefix: "/data/upload/1/3f2a1b-photo.jpg"
    if "-" in name and name.split("-", 1)[1] in by_name:
        return by_name[name.split("-", 1)[1]]
    return None


def read_labelstudio(path: Path, images_dir: Path | None) -> Iterator[ImportedImage]:
    from . import FormatError, majority_label

    try:
        tasks = json.loads(path.read_text())
    except (IsADirectoryError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(
            f"{path}: --format labelstudio needs a Label Studio JSON export file ({exc})"
        ) from None
    if (
        not isinstance(tasks, list)
        or (tasks and not isinstance(tasks[0], dict))
        or (tasks and "data" not in tasks[0])
    ):
        raise FormatError(f"{path} is not a Label Studio JSON export (a list of tasks with 'data')")
    by_name: dict[str, Path] = {}
    if images_dir:
        for dp, _, fs in os.walk(images_dir):
            for f in fs:
                by_name.setdefault(f, Path(dp) / f)
    for task in tasks:
        data = task.get("data", {})
        url = data.get("image") or next((v for v in data.values() if isinstance(v, str)), None)
        if not url:
            raise FormatError(f"{path}: task {task.get('id')} has no image URL in its data")
        img = _resolve(url, images_dir, path.parent, by_name)
        if img is None:
            raise FormatError(
                f"{path}: cannot find the image of task {task.get('id')} ({url}); "
                "pass --images DIR (the local-files root or upload folder)"
            )
        anns = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        anns.sort(key=lambda a: a.get("updated_at") or a.get("created_at") or "")
        boxes = None
        if anns:
            ann = anns[-1]
            boxes = []
            for r in ann.get("result", []):
                if r.get("type") != "rectanglelabels":
                    continue
                v = r["value"]
                W, H = r.get("original_width"), r.get("original_height")
                if not W or not H:
                    raise FormatError(
                        f"{path}: task {task.get('id')}: a result without "
                        "original_width/original_height"
                    )
                x1, y1 = v["x"] / 100 * W, v["y"] / 100 * H
                boxes.append(
                    Box(
                        v["rectanglelabels"][0],
                        x1,
                        y1,
                        x1 + v["width"] / 100 * W,
                        y1 + v["height"] / 100 * H,
                        source="labelstudio",
                        annotator=str(ann.get("completed_by")) if ann.get("completed_by") else None,
                        annotation_id=ann.get("id"),
                    )
                )
        label = data.get("label") or majority_label(boxes)
        yield ImportedImage(path=str(img.resolve()), label=label, boxes=boxes)
