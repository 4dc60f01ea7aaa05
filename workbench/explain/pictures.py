"""The pictures of `wb explain`: per detection the photo with its box and the heatmap
overlaid (the library's ``show_cam_on_image``), per image the grey map, and the run's
HTML contact sheet (class, score, TP/FP where the catalog knows the ground truth, the
inside-box share, flagged or not) with the per-class share of flagged detections.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..fsutil import atomic_write_bytes, atomic_write_text

OVERLAY_SIDE = 640  # the longer side of a detection's picture, in pixels
BOX_COLOUR = (255, 255, 255)
FLAG_COLOUR = (230, 57, 70)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_map(heatmap: np.ndarray, path: Path) -> None:
    """The heatmap as an 8-bit grey PNG of the image's size (FiftyOne reads it)."""
    grey = np.uint8(np.round(np.clip(heatmap, 0.0, 1.0) * 255))
    atomic_write_bytes(path, _png(Image.fromarray(grey, mode="L")))


def write_overlay(
    image: Image.Image,
    heatmap: np.ndarray,
    box: tuple[float, float, float, float],
    caption: str,
    flagged: bool,
    path: Path,
) -> None:
    """Photo + heatmap (jet colours, half and half) + the box, longer side OVERLAY_SIDE."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    scale = min(1.0, OVERLAY_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    photo = image.convert("RGB").resize(size, Image.BILINEAR) if scale < 1 else image.convert("RGB")
    heat = Image.fromarray(np.float32(heatmap), mode="F").resize(size, Image.BILINEAR)
    rgb = np.float32(np.asarray(photo)) / 255.0
    mixed = show_cam_on_image(rgb, np.clip(np.asarray(heat), 0.0, 1.0), use_rgb=True)
    out = Image.fromarray(mixed)
    draw = ImageDraw.Draw(out)
    colour = FLAG_COLOUR if flagged else BOX_COLOUR
    xy = [v * scale for v in box]
    draw.rectangle(xy, outline=colour, width=3)
    draw.rectangle([xy[0], max(0, xy[1] - 14), xy[0] + 7 * len(caption) + 6, xy[1]], fill=colour)
    draw.text((xy[0] + 3, max(0, xy[1] - 13)), caption, fill=(0, 0, 0))
    atomic_write_bytes(path, _png(out))


_CSS = """
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;width:340px;
font-size:13px}.card.flag{border-left:6px solid #e63946}
.card img{max-width:320px;max-height:320px;display:block}
.big{font-size:16px;font-weight:600}.path{color:#777;word-break:break-all;font-size:11px}
.tp{color:#2a9d50;font-weight:600}.fp{color:#e63946;font-weight:600}.muted{color:#777}
table.c{border-collapse:collapse;margin:6px 0 14px}
table.c td,table.c th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}
table.c td:first-child,table.c th:first-child{text-align:left}
"""


def write_sheet(run: dict, folder: Path) -> Path:
    """``index.html`` in ``folder`` for one run (``ExplainRun.to_json()``)."""
    esc = html.escape
    rows = run["per_class"]
    table = "".join(
        f"<tr><td>{esc(c)}</td><td>{v['detections']}</td><td>{v['flagged']}</td>"
        f"<td>{v['share_flagged']:.0%}</td></tr>"
        for c, v in rows.items()
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>wb explain: model {esc(run['version'])}, {esc(run['method'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Where model {esc(run['version'])} looks: {esc(run['method'])} on "
        f"<code>{esc(run['layer'])}</code></h1>",
        f"<p>{len(run['detections'])} detections with score {run['min_score']:g} and above on "
        f"{len(run['images'])} images. <b>Flagged</b> (red edge): less than "
        f"{run['min_inside_share']:.0%} of the heatmap's energy lies inside the box, the "
        "evidence is mostly elsewhere. TP/FP: against the catalog's ground truth (IoU 0.5, "
        "same class), where the image is annotated.</p>",
        "<table class='c'><tr><th>class</th><th>detections</th><th>flagged</th>"
        f"<th>share flagged</th></tr>{table}</table><div class='grid'>",
    ]
    for d in sorted(run["detections"], key=lambda d: (not d["flagged"], -d["score"])):
        outcome = d.get("outcome")
        verdict = (
            f"<span class='{outcome}'>{outcome.upper()}</span>"
            if outcome
            else "<span class='muted'>no ground truth</span>"
        )
        share = "-" if d["inside_share"] is None else f"{d['inside_share']:.0%}"
        rel = Path(d["png"]).relative_to(folder).as_posix()
        parts.append(
            f"<div class='card{' flag' if d['flagged'] else ''}'>"
            f"<img src='{esc(rel)}' alt='{esc(d['label'])}'>"
            f"<div><span class='big'>{esc(d['label'])} {d['score']:.2f}</span> · {verdict} · "
            f"inside {share} (box {d['box_area_share']:.0%} of the photo)"
            f"{' · <b>flagged</b>' if d['flagged'] else ''}</div>"
            f"<div class='path'>{esc(d['path'])}</div></div>"
        )
    parts.append("</div></body></html>")
    page = Path(folder) / "index.html"
    atomic_write_text(page, "\n".join(parts))
    return page
