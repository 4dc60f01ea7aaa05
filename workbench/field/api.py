"""The field app's HTTP API, mounted on `wb serve --field` beside the ML backend: the
same promoted model (``ModelHolder``), the same one inference thread, the same
catalog.

- ``GET /app``: the phone page (no token needed to load it; every call it makes sends one);
- ``GET /v1/classes``: the classes a device may name, and the model serving;
- ``POST /v1/detect``: multipart upload, field ``image`` -> ``photo_id``, the model's
  boxes (pixels of the upright photo) and its answer (top class, or ``background``);
- ``POST /v1/feedback``: ``{photo_id, verdict, label?, note?}``; the latest verdict per
  photo and device counts, every one is kept.

Every ``/v1`` call needs ``Authorization: Bearer <token>`` (`wb field token add NAME`).
Errors are the service's JSON ``{"error": ...}``; a refused upload stores nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from ..active.uncertainty import UncertaintyConfig
from ..backend.admission import Busy, PredictGate
from ..backend.holder import ModelHolder, NoModel
from ..backend.regions import image_uncertainty
from ..backend.schemas import ErrorResponse
from ..catalog.field import FIELD_SOURCE
from ..catalog.records import ImageRecord
from ..labelstudio.tasks import DISPLAY_MIN_SCORE
from ..taxonomy import BACKGROUND, Taxonomy
from .page import app_html
from .store import PhotoRefused, store_photo, upright_photo
from .tokens import device_for_token

logger = logging.getLogger(__name__)

IMAGE_FIELD = "image"
# an answer this uncertain (active.uncertainty, 0..1) goes first in Label Studio
UNCERTAIN_AT = 0.5


@dataclass
class FieldSettings:
    photos_dir: Path
    taxonomy: Taxonomy | None = None
    keep_location: bool = False
    min_score: float = DISPLAY_MIN_SCORE  # boxes below are neither shown nor the answer
    uncertain_at: float = UNCERTAIN_AT
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)


# ---- request and response types ---------------------------------------------------------
class DetectedBox(BaseModel):
    label: str
    score: float
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the upright photo")


class DetectResponse(BaseModel):
    photo_id: int
    model_version: str
    answer: str = Field(description="the top class, or 'background' when no box passes")
    answer_score: float | None
    uncertain: bool
    width: int
    height: int
    detections: list[DetectedBox]
    location_removed: bool


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    photo_id: int
    verdict: Literal["correct", "wrong"]
    label: str | None = Field(default=None, min_length=1, max_length=100)
    note: str | None = Field(default=None, max_length=2000)


class FeedbackResponse(BaseModel):
    photo_id: int
    device: str
    verdict: str
    label: str | None
    note: str | None
    changed: bool = Field(description="false: this device had sent exactly this already")
    history: int = Field(description="verdicts this device sent on the photo, all kept")


class ClassesResponse(BaseModel):
    model_version: str | None
    classes: list[str]


# ---- the router -------------------------------------------------------------------------
def field_router(
    holder: ModelHolder, catalog_factory, settings: FieldSettings, gate: PredictGate | None = None
) -> APIRouter:
    """The field app's routes. ``gate``: the backend's ``/predict`` gate (``app.state.
    predict_gate``), so photos and Label Studio's batches share one bound on the requests
    that hold decoded images; a gate of its own when served alone."""
    router = APIRouter()
    gate = gate or PredictGate()
    page = app_html()

    def device(request: Request) -> str:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise HTTPException(
                401,
                "no token: send 'Authorization: Bearer <token>' (a token is made by "
                "`wb field token add NAME`)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        with catalog_factory() as catalog:
            found = device_for_token(catalog, value.strip())
        if found is None:
            raise HTTPException(
                401,
                "token refused (unknown or revoked): ask for a new one (`wb field token add NAME`)",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return found.name

    errors = {
        401: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        415: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    }

    @router.get("/app", response_class=HTMLResponse, summary="The field app (phone page)")
    def app_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @router.get("/v1/classes", response_model=ClassesResponse, responses=errors)
    def classes(who: str = Depends(device)) -> ClassesResponse:
        predictor = holder.current()
        names = list(predictor.classes) if predictor is not None else _taxonomy_classes(settings)
        return ClassesResponse(
            model_version=predictor.version if predictor is not None else None,
            classes=[*names, BACKGROUND],
        )

    @router.post("/v1/detect", response_model=DetectResponse, responses=errors)
    async def detect(request: Request, who: str = Depends(device)) -> DetectResponse:
        """Identify the products on a photo; the photo and the answer are kept."""
        body = await request.body()
        data = _uploaded_image(request.headers.get("content-type", ""), body)
        return await run_in_threadpool(
            _admitted, gate, holder, catalog_factory, settings, who, data
        )

    @router.post(
        "/v1/feedback", response_model=FeedbackResponse, responses={**errors, 404: errors[401]}
    )
    def feedback(req: FeedbackRequest, who: str = Depends(device)) -> FeedbackResponse:
        """Say whether the answer to a photo was right; the latest verdict of a device on
        a photo counts, earlier ones are kept."""
        label = _check_label(req.label, settings)
        with catalog_factory() as catalog:
            photo = catalog.field_photo(req.photo_id)
            if photo is None:
                raise HTTPException(
                    404, f"no photo {req.photo_id}: send the photo to /v1/detect first"
                )
            if req.verdict == "correct" and label not in (None, photo.answer):
                raise HTTPException(
                    422,
                    f"a 'correct' verdict agrees with the answer ({photo.answer}); to name "
                    f"another class ({label}) send verdict 'wrong'",
                )
            latest, changed = catalog.record_field_feedback(
                photo.id, who, req.verdict, label, req.note
            )
            history = [f for f in catalog.field_feedback(photo.id) if f.device == who]
        return FeedbackResponse(
            photo_id=photo.id,
            device=who,
            verdict=latest.verdict,
            label=latest.label,
            note=latest.note,
            changed=changed,
            history=len(history),
        )

    return router


def _admitted(gate: PredictGate, *args):
    """``_detect`` once the gate lets it in; 503 (retry later) when too many wait."""
    try:
        with gate.admit():
            return _detect(*args)
    except Busy as exc:
        logger.warning("%s", exc)
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None


def _detect(holder, catalog_factory, settings: FieldSettings, who: str, data: bytes):
    try:
        predictor = holder.require()
    except NoModel as exc:  # checked before anything is stored
        raise HTTPException(503, str(exc)) from None
    try:
        photo = upright_photo(data, keep_location=settings.keep_location)
    except PhotoRefused as exc:
        raise HTTPException(exc.status, exc.message) from None
    t0 = time.perf_counter()
    found = [d.to_dict() for d in holder.infer(predictor, [photo.image])[0]]  # one inference thread
    logger.debug("field photo: %d boxes in %.0f ms", len(found), 1000 * (time.perf_counter() - t0))
    shown = sorted(
        (d for d in found if float(d["score"]) >= settings.min_score),
        key=lambda d: -float(d["score"]),
    )
    answer = shown[0]["label"] if shown else BACKGROUND
    answer_score = float(shown[0]["score"]) if shown else None
    uncertainty = image_uncertainty(
        found, None, list(predictor.classes), settings.taxonomy, settings.uncertainty
    )
    boxes = [
        {
            "label": d["label"],
            "score": round(float(d["score"]), 4),
            "box": [round(float(d[k]), 1) for k in ("x1", "y1", "x2", "y2")],
        }
        for d in shown
    ]
    path, written = store_photo(settings.photos_dir, photo)
    record = ImageRecord(
        id=None,
        path=str(path.resolve()),
        sha256=photo.sha256,
        file_size=len(photo.data),
        mtime=path.stat().st_mtime,
        width=photo.width,
        height=photo.height,
        source_format=FIELD_SOURCE,
        source=FIELD_SOURCE,
    )
    try:
        with catalog_factory() as catalog:
            stored = catalog.record_field_photo(
                record,
                who,
                predictor.version,
                found,
                boxes,
                answer,
                answer_score,
                uncertainty,
                uncertainty >= settings.uncertain_at,
            )
    except BaseException:
        if written:  # a file no catalog row points at would be an orphan
            path.unlink(missing_ok=True)
        raise
    return DetectResponse(
        photo_id=stored.id,
        model_version=predictor.version,
        answer=answer,
        answer_score=answer_score,
        uncertain=stored.uncertain,
        width=photo.width,
        height=photo.height,
        detections=[DetectedBox(**b) for b in boxes],
        location_removed=photo.had_location and not photo.location_kept,
    )


def _uploaded_image(content_type: str, body: bytes) -> bytes:
    """The bytes of the multipart field ``image``. The body is already whole and bounded
    (the service's size limit), so it is split at the boundary directly: the standard
    library's MIME parser takes ~130 ms on a 2 MB photo, this a few ms."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise HTTPException(
            415, f"send the photo as multipart/form-data with the field '{IMAGE_FIELD}'"
        )
    for part in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if part.startswith(b"--"):  # the closing delimiter
            break
        head, sep, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if sep and _field_name(head) == IMAGE_FIELD:
            return content.removesuffix(b"\r\n")
    raise HTTPException(
        422, f"no field '{IMAGE_FIELD}' in the upload: send the photo as that form field"
    )


def _field_name(head: bytes) -> str | None:
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-disposition":
            disposition = Message()
            disposition["content-disposition"] = value.strip()
            found = disposition.get_param("name", header="content-disposition")
            return found if isinstance(found, str) else None
    return None


def _taxonomy_classes(settings: FieldSettings) -> list[str]:
    return settings.taxonomy.classes("species") if settings.taxonomy is not None else []


def _check_label(label: str | None, settings: FieldSettings) -> str | None:
    if label is None:
        return None
    taxonomy = settings.taxonomy
    if taxonomy is None:
        return label
    known = taxonomy.canonical(label)
    if known is None:
        raise HTTPException(
            422,
            f"unknown class '{label[:100]}'; choose one of: "
            f"{', '.join([*taxonomy.classes('species'), BACKGROUND])}",
        )
    return known
