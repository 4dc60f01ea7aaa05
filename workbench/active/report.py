"""The `wb prioritize --show N` page: thumbnails with the model's boxes and why each
image was picked.

Written to ``reports/prioritize/<version>/index.html`` with its thumbnails beside it
(``thumbs/``); a re-run rewrites the page and redraws the thumbnails (the boxes may have
changed with the predictions).
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from pathlib import Path

from ..fsutil import atomic_write_bytes, atomic_write_text, remove_leftover_temps
from ..images import UnreadableImage, open_image

THUMB_SIDE = 320
SIGNALS = ("label_disagreement", "missed_product", "class_instability")
_COLOURS = (
    (230, 57, 70),
    (29, 120, 230),
    (42, 157, 80),
    (244, 162, 97),
    (131, 56, 236),
    (0, 150, 160),
    (200, 120, 0),
    (90, 90, 90),
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;width:340px;
font-size:13px}
.card.sel{border-left:6px solid #e63946}.card img{max-width:320px;max-height:320px;display:block}
.u{font-size:18px;font-weight:600}.path{color:#777;word-break:break-all;font-size:11px}
table.c{border-collapse:collapse;margin-top:4px}
table.c td{padding:1px 6px;border-bottom:1px solid #eee}
.on{color:#e63946;font-weight:600}.muted{color:#777}
"""


def write_report(
    result, reports_dir: Path, show: int, on_progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write the page for the first ``show`` images in annotation order; returns its path."""
    out = Path(reports_dir) / "prioritize" / result.version
    thumbs = out / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    remove_leftover_temps(out, recursive=True)  # what a killed run's writes left
    shown = annotation_order(result)[:show]
    cfg = result.config
    esc = html.escape
    from ..labelstudio.tasks import DISPLAY_MIN_SCORE

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>wb prioritize: model {esc(result.version)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Ask about these first: model {esc(result.version)}</h1>",
        f"<p>{len(result.ranked)} unannotated images ranked by <b>{esc(cfg.uncertainty.score)}</b> "
        f"(boxes aggregated by <b>{esc(cfg.uncertainty.aggregate)}</b>); strategy "
        f"<b>{esc(cfg.selection.strategy)}</b> selected {len(result.batch)} (red edge). "
        f"The first {len(shown)} in the order annotators get them; boxes drawn are the model's "
        f"with score {DISPLAY_MIN_SCORE:g} and above (what annotators see pre-drawn), with their "
        "scores.</p><div class='grid'>",
    ]
    classes: dict[str, tuple[int, int, int]] = {}
    for n, p in enumerate(shown, start=1):
        thumb = _thumb(p, thumbs, classes)
        img = (
            f"<img src='{esc(thumb)}' alt='image {p.image_id}'>"
            if thumb
            else "<p class='muted'>(unreadable now)</p>"
        )
        parts.append(
            f"<div class='card{' sel' if p.selected else ''}'>{img}"
            f"<div><span class='u'>{p.uncertainty:.3f}</span> #{n} · image {p.image_id} · "
            f"label {esc(str(p.label))}</div><div class='path'>{esc(p.path)}</div>"
            f"{_components_table(p.components)}</div>"
        )
        if on_progress is not None:
            on_progress(n, len(shown))
    parts.append("</div></body></html>")
    page = out / "index.html"
    atomic_write_text(page, "\n".join(parts))
    return page


def annotation_order(result) -> list:
    """The batch first (in selection order), then the rest by uncertainty."""
    chosen = {p.image_id for p in result.batch}
    return [*result.batch, *(p for p in result.ranked if p.image_id not in chosen)]


def _components_table(c: dict) -> str:
    esc = html.escape
    rows = [
        (
            "base",
            f"{c.get('base', 0):.3f} ({esc(str(c.get('score')))}, "
            f"{esc(str(c.get('aggregate')))} over {c.get('boxes', 0)} boxes)",
        )
    ]
    for s in SIGNALS:
        v = float(c.get(s, 0) or 0)
        rows.append((s.replace("_", " "), f"<span class='{'on' if v else 'muted'}'>{v:.2f}</span>"))
    if c.get("classifier"):  # --signal with disagreement
        label = c.get("classifier_label")
        said = f"{esc(str(label))} {c.get('classifier_score') or 0:.2f}" if label else "no answer"
        rows.append((f"classifier {esc(str(c['classifier']))}", said))
        d, kind = c.get("disagreement"), c.get("disagreement_kind")
        text = (
            "-" if d is None else f"{d:.2f}" + (f" ({esc(kind.replace('_', ' '))})" if kind else "")
        )
        rows.append(
            ("classifier vs detector", f"<span class='{'on' if d else 'muted'}'>{text}</span>")
        )
    per_box = c.get("box_uncertainties") or []
    if per_box:
        rows.append(
            (
                "per box",
                ", ".join(f"{u:.2f}" for u in per_box[:8]) + (" …" if len(per_box) > 8 else ""),
            )
        )
    body = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='c'>{body}</table>"


def _thumb(p, thumbs: Path, colours: dict) -> str | None:
    from PIL import ImageDraw

    try:
        img = open_image(p.path)
    except UnreadableImage:
        return None
    scale = min(1.0, THUMB_SIDE / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    draw = ImageDraw.Draw(img)
    # the boxes an annotator will see pre-drawn (faint ones still count in the scores)
    from ..labelstudio.tasks import DISPLAY_MIN_SCORE

    shown = [b for b in p.boxes if b.get("score", 0) >= DISPLAY_MIN_SCORE]
    for b in sorted(shown, key=lambda b: b.get("score", 0)):
        colour = colours.setdefault(b["label"], _COLOURS[len(colours) % len(_COLOURS)])
        xy = [b["x1"] * scale, b["y1"] * scale, b["x2"] * scale, b["y2"] * scale]
        draw.rectangle(xy, outline=colour, width=2)
        draw.text((xy[0] + 2, xy[1] + 1), f"{b['label']} {b.get('score', 0):.2f}", fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    name = f"{p.image_id}.jpg"
    atomic_write_bytes(thumbs / name, buf.getvalue())
    return f"thumbs/{name}"
