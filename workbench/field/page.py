"""The phone page (``/app``): one self-contained HTML file, inline CSS and JS, no
outside assets (it works where the phone has no internet, only the service)."""

from __future__ import annotations

from importlib.resources import files


def app_html() -> str:
    return files(__package__).joinpath("app.html").read_text(encoding="utf-8")
