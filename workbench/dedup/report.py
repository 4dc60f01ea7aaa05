"""The dedup report: JSON (for machines), CSV (for spreadsheets), HTML (for people).

Everything is written under ``reports/dedup/`` in the workspace; thumbnails are small
JPEG files in ``reports/dedup/thumbs/`` (made once per image version and reused), so
the page stays light with a thousand groups. Image folders are only read.
"""

from __future__ import annotations

import csv
import html
import io
import os
from collections.abc import Callable
from pathlib import Path

from ..fsutil import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    remove_leftover_temps,
)
from ..images import UnreadableImage, open_image
from .run import DedupRun

THUMB_SIDE = 160


def build_report(catalog, run: DedupRun) -> dict:
    """The report as a dict: ``{"groups": [...], "summary": {...}, ...}``."""
    groups = []
    for gid in run.group_ids:
        g = catalog.dup_group(gid)
        images = []
        for m in g.members:
            im = catalog.get_image(m.image_id)
            images.append(
                {
                    "id": im.id,
                    "path": im.path,
                    "label": im.label,
                    "keep": m.keep,
                    "status": im.status,
                    "width": im.width,
                    "height": im.height,
                    "pixels": im.pixels,
                    "distance": m.distance,
                    "sha256": im.sha256,
                }
            )
        images.sort(key=lambda d: (not d["keep"], d["id"]))
        groups.append(
            {
                "id": str(g.id),
                "kind": g.kind,
                "images": images,
                "labels": sorted({d["label"] or "" for d in images}),
                "resolution": g.resolution,
                "resolved_label": g.resolved_label,
                "resolved_by": g.resolved_by,
                "resolved_at": g.resolved_at,
            }
        )
    dup = [g for g in groups if g["kind"] == "duplicate"]
    conf = [g for g in groups if g["kind"] == "conflict"]
    o = run.options
    return {
        "groups": groups,
        "summary": {
            "images": run.images,
            "duplicate_groups": len(dup),
            "conflict_groups": len(conf),
            "duplicate_images": sum(len(g["images"]) - 1 for g in dup),
            "conflict_images": sum(len(g["images"]) for g in conf),
            "unreadable": len(run.unreadable),
            "hashed_now": run.hashed_now,
            "hashed_cached": run.hashed_cached,
            "embedded_now": run.embedded_now,
            "embedded_cached": run.embedded_cached,
            "pairs": dict(sorted(run.pairs.items())),
            "rejected_by_pixel_check": run.rejected_by_pixels,
            "rejected_by_colour": run.rejected_by_colour,
            "pairs_settled_distinct": run.suppressed_distinct,
        },
        "settings": {
            "method": o.method,
            "max_distance": o.max_distance,
            "verify_distance": o.verify_distance,
            "min_correlation": o.min_correlation,
            "min_cosine": o.min_cosine,
        },
        "unreadable": [{"path": p, "reason": r} for p, r in run.unreadable],
    }


def write_csv(report: dict, path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "group",
            "kind",
            "resolution",
            "image_id",
            "path",
            "label",
            "keep",
            "status",
            "width",
            "height",
            "distance",
        ]
    )
    for g in report["groups"]:
        for im in g["images"]:
            w.writerow(
                [
                    g["id"],
                    g["kind"],
                    g["resolution"] or "",
                    im["id"],
                    im["path"],
                    im["label"] or "",
                    int(im["keep"]),
                    im["status"],
                    im["width"],
                    im["height"],
                    "" if im["distance"] is None else im["distance"],
                ]
            )
    atomic_write_text(path, buf.getvalue())


def _thumb(im: dict, thumbs: Path) -> str | None:
    """Write (once) and return the thumbnail's path relative to the report folder."""
    name = f"{im['id']}_{(im['sha256'] or 'x')[:12]}.jpg"
    dest = thumbs / name
    if not dest.exists():
        try:
            img = open_image(im["path"])
        except UnreadableImage:
            return None
        img.thumbnail((THUMB_SIDE, THUMB_SIDE))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=80)
        atomic_write_bytes(dest, out.getvalue())
    return f"thumbs/{name}"


_CSS = """
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa}
.g{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 10px;padding:6px 10px}
.g.conflict{border-left:6px solid #d33}.g.duplicate{border-left:6px solid #39c}
.g.settled{opacity:.75}.row{display:flex;gap:10px;flex-wrap:wrap}
.im{width:170px;font-size:12px;word-break:break-all}.im img{max-width:160px;max-height:160px;display:block}
.keep{outline:3px solid #2a2;outline-offset:2px}.h{font-weight:600;margin-bottom:4px}
.muted{color:#777}nav a{margin-right:1em}
"""


def write_html(
    report: dict, path: Path, on_progress: Callable[[int, int], None] | None = None
) -> None:
    thumbs = path.parent / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    s = report["summary"]
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>wb dedup report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Duplicates and cross-class conflicts</h1>",
        f"<p>{s['images']} images checked: <b>{s['conflict_groups']}</b> conflict groups, "
        f"<b>{s['duplicate_groups']}</b> duplicate groups ({s['duplicate_images']} copies set "
        f"aside), {s['unreadable']} unreadable. Settle a conflict with "
        "<code>wb dedup resolve GROUP --label CLASS</code> or <code>--distinct</code>. "
        "The kept image has a green frame.</p>",
        "<nav><a href='#conflicts'>conflicts</a><a href='#duplicates'>duplicates</a>"
        "<a href='#unreadable'>unreadable</a></nav>",
    ]
    total = len(report["groups"])
    done = 0
    for kind, anchor in (("conflict", "conflicts"), ("duplicate", "duplicates")):
        parts.append(f"<h2 id='{anchor}'>{anchor}</h2>")
        for g in report["groups"]:
            if g["kind"] != kind:
                continue
            settled = (
                (
                    f" &middot; settled: {esc(g['resolution'])}"
                    + (f" &rarr; {esc(g['resolved_label'])}" if g["resolved_label"] else "")
                    + f" by {esc(g['resolved_by'] or '?')}"
                )
                if g["resolution"]
                else ""
            )
            parts.append(
                f"<div class='g {kind}{' settled' if g['resolution'] else ''}' "
                f"id='g{esc(g['id'])}'><div class='h'>group {esc(g['id'])} &middot; {kind}"
                f" &middot; labels: {esc(', '.join(g['labels']))}{settled}</div>"
                "<div class='row'>"
            )
            for im in g["images"]:
                src = _thumb(im, thumbs)
                img = (
                    f"<img loading='lazy' src='{esc(src)}' alt=''>"
                    if src
                    else "<div class='muted'>(cannot read)</div>"
                )
                parts.append(
                    f"<div class='im'><div class='{'keep' if im['keep'] else ''}'>{img}</div>"
                    f"<b>{esc(im['label'] or '(no label)')}</b> &middot; {im['width']}&times;"
                    f"{im['height']} &middot; d={'' if im['distance'] is None else im['distance']}"
                    f"{' &middot; <b>kept</b>' if im['keep'] else ''}<br>"
                    f"<span class='muted'>{esc(im['status'])} &middot; {esc(im['path'])}</span></div>"
                )
            parts.append("</div></div>")
            done += 1
            if on_progress:
                on_progress(done, total)
    parts.append("<h2 id='unreadable'>unreadable</h2><ul>")
    parts += [f"<li>{esc(u['path'])}: {esc(u['reason'])}</li>" for u in report["unreadable"]]
    parts.append("</ul></body></html>")
    atomic_write_text(path, "\n".join(parts))


def write_report(
    report: dict,
    reports_dir: Path,
    extra_json: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Path]:
    """Write report.json, report.csv and index.html under ``reports_dir/dedup``."""
    out = Path(reports_dir) / "dedup"
    out.mkdir(parents=True, exist_ok=True)
    remove_leftover_temps(out, recursive=True)  # what a killed run's writes left
    paths = {"json": out / "report.json", "csv": out / "report.csv", "html": out / "index.html"}
    atomic_write_json(paths["json"], report)
    write_csv(report, paths["csv"])
    write_html(report, paths["html"], on_progress)
    if extra_json is not None:
        atomic_write_json(Path(os.fspath(extra_json)), report)
        paths["extra_json"] = Path(extra_json)
    return paths
