"""The Label Studio ML backend: an HTTP service that pre-draws the promoted model's boxes.

``create_app(holder, catalog_factory, settings)`` builds the FastAPI app;
``ModelHolder`` serves the promoted version and swaps it without a restart;
``run``/``running`` start uvicorn (`wb serve`, tests, benchmarks).
"""

from __future__ import annotations

from .app import BackendSettings, create_app
from .holder import ModelHolder, NoModel
from .images import ImageError, ImageResolver
from .server import run, running
from .worker import RetrainWorker

__all__ = [
    "BackendSettings",
    "create_app",
    "ModelHolder",
    "NoModel",
    "ImageError",
    "ImageResolver",
    "RetrainWorker",
    "run",
    "running",
]
