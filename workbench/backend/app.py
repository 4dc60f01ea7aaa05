"""The ML backend HTTP service: ``create_app(holder, catalog_factory, settings)``.

Routes validate, dispatch and serialise; the model lives in the ``ModelHolder`` and
the state in the catalog. Nothing is kept in module globals: two apps in one process
(tests) never share anything.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..active.uncertainty import UncertaintyConfig
from ..labelstudio.config import (
    ControlMapping,
    LabelConfigError,
    detection_config,
    mapping_report,
    parse_label_config,
)
from ..labelstudio.tasks import DISPLAY_MIN_SCORE, IMAGE_ID_FIELD, task_score
from ..taxonomy import LEVELS, Taxonomy
from .admission import DEFAULT_QUEUE, DEFAULT_SLOTS, DEFAULT_WAIT_S, Busy, PredictGate
from .holder import ModelHolder, NoModel
from .images import ImageError, ImageResolver
from .openapi import BAD_BODY, FASTAPI_BAD_BODY, error_responses, install_security, security
from .regions import image_uncertainty, regions
from .schemas import (
    HealthResponse,
    LabelsAnswer,
    PredictRequest,
    PredictResponse,
    SetupRequest,
    SetupResponse,
    TaskPrediction,
    VersionsResponse,
    WebhookEvent,
    WebhookResponse,
)
from .worker import RetrainWorker

logger = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass
class BackendSettings:
    taxonomy: Taxonomy | None = None
    document_root: Path | None = None  # Label Studio's local-files root
    ls_url: str | None = None  # for /data/upload/... images
    ls_token: str | None = None
    max_body_bytes: int = 16 * MiB
    max_image_bytes: int = 30 * MiB
    fetch_timeout: float = 10.0
    basic_auth: tuple[str, str] | None = None
    bearer_token: str | None = None
    min_score: float = DISPLAY_MIN_SCORE  # boxes below are not sent (faint boxes)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    level: str = LEVELS[0]  # the project's label level (labels are matched to classes there)
    label_map: dict[str, tuple[str, ...]] = field(default_factory=dict)  # [labelstudio.label_map]
    allowed_image_hosts: tuple[str, ...] = ()  # [serve] allowed_image_hosts (image_hosts.py)
    predict_slots: int = DEFAULT_SLOTS  # /predict requests in progress at once (admission.py)
    predict_queue: int = DEFAULT_QUEUE  # more may wait; beyond that, 503
    predict_wait_s: float = DEFAULT_WAIT_S

    def resolver(self) -> ImageResolver:
        return ImageResolver(
            self.document_root,
            self.ls_url,
            self.ls_token,
            self.max_image_bytes,
            self.fetch_timeout,
            allowed_hosts=self.allowed_image_hosts,
        )


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not they declare
    a Content-Length (chunked bodies are counted as they arrive)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                return await _send_json(send, 400, {"error": "invalid Content-Length"})
            if too_big:
                return await _send_json(
                    send, 413, {"error": f"request body over the {self.max_bytes}-byte limit"}
                )
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await _send_json(
                    send, 413, {"error": f"request body over the {self.max_bytes}-byte limit"}
                )
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _send_json(send, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _auth_dependency(settings: BackendSettings) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        if settings.basic_auth is None and settings.bearer_token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if settings.bearer_token and scheme.lower() == "bearer":
            if hmac.compare_digest(value.encode(), settings.bearer_token.encode()):
                return
        if settings.basic_auth and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            want_user, want_pass = settings.basic_auth
            if hmac.compare_digest(user.encode(), want_user.encode()) & hmac.compare_digest(
                password.encode(), want_pass.encode()
            ):
                return
        challenge = 'Basic realm="wb serve"' if settings.basic_auth else "Bearer"
        raise HTTPException(401, "authentication required", headers={"WWW-Authenticate": challenge})

    return check


def create_app(
    holder: ModelHolder,
    catalog_factory,
    settings: BackendSettings | None = None,
    retrainer: RetrainWorker | None = None,
) -> FastAPI:
    """The service. ``catalog_factory()`` opens a catalog (a context manager) per use,
    so no SQLite connection is shared between request threads."""
    settings = settings or BackendSettings()
    app = FastAPI(
        title="workbench ML backend",
        version="1",
        description="Label Studio ML backend protocol: pre-annotation boxes from the "
        "workspace's promoted detector.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.holder = holder
    app.state.retrainer = retrainer
    app.state.label_studio_seen = {}  # hostname/access_token from /setup
    resolver = settings.resolver()
    gate = PredictGate(settings.predict_slots, settings.predict_queue, settings.predict_wait_s)
    app.state.predict_gate = gate
    auth = [Depends(_auth_dependency(settings))]
    schemes, secured = security(settings.basic_auth is not None, settings.bearer_token is not None)
    # every answer each route can give, with its JSON error model (docs/serve.md's table)
    body_errors = (400, 401, 413, 422) if schemes else (400, 413, 422)
    # parsed label configs -> their mappings (few per service); reported ones logged once
    parsed: dict[str, tuple[ControlMapping, ...]] = {}
    reported: set[tuple[str, str]] = set()

    def mappings_for(label_config: str | None, classes: list[str]) -> tuple[ControlMapping, ...]:
        """The config's controls with their mappings; without a config, ours over the
        model's classes (each class onto itself). ``LabelConfigError`` when unusable."""
        text = label_config if label_config and label_config.strip() else None
        key = text or "\0" + "\0".join(classes)
        if key not in parsed:
            config = parse_label_config(text or detection_config(classes))
            found = config.mappings(settings.taxonomy, settings.level, settings.label_map)
            if len(parsed) >= 16:
                parsed.clear()
            parsed[key] = found
        return parsed[key]

    def report_once(version: str, label_config: str, mappings, classes: list[str]):
        report = mapping_report(mappings, classes)
        if (version, label_config) not in reported:
            if len(reported) >= 64:
                reported.clear()
            reported.add((version, label_config))
            for line in report.lines(settings.min_score):
                (logger.warning if line.startswith("warning") else logger.info)(
                    "label mapping: %s", line
                )
        return report

    _install_error_handlers(app)
    install_security(app, schemes)

    def health() -> HealthResponse:
        return HealthResponse(model_version=holder.current() and holder.version)

    app.get("/", response_model=HealthResponse, summary="Health (alias)")(health)
    app.get("/health", response_model=HealthResponse, summary="Health")(health)

    @app.post(
        "/setup",
        response_model=SetupResponse,
        response_model_exclude_none=True,
        dependencies=auth,
        responses=error_responses(*body_errors, 503),
        openapi_extra=secured,
    )
    def setup(req: SetupRequest) -> SetupResponse:
        """Label Studio asks which model version answers (before every predict batch)."""
        if req.hostname or req.access_token:
            app.state.label_studio_seen = {"url": req.hostname, "token": req.access_token}
        predictor = _require(holder)
        if not req.schema_ or not req.schema_.strip():
            return SetupResponse(model_version=predictor.version)
        try:
            mappings = mappings_for(req.schema_, predictor.classes)
        except LabelConfigError as exc:
            # /setup only reports: Label Studio would refuse the backend on an error here
            logger.warning("project %s: %s", req.project, exc)
            return SetupResponse(model_version=predictor.version)
        report = report_once(predictor.version, req.schema_, mappings, predictor.classes)
        return SetupResponse(
            model_version=predictor.version,
            labels=[LabelsAnswer(**vars(c)) for c in report.controls],
            unmatched_classes=report.unreached,
            warning=report.warning,
        )

    @app.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        dependencies=auth,
        responses=error_responses(*body_errors, 503),
        openapi_extra=secured,
    )
    def predict(req: PredictRequest) -> PredictResponse:
        """One item per task, in order: its prediction, or ``error`` and ``status`` (and
        no ``result``) when it got none: its image (or one of its images) could not be read
        or was refused, or the label config holds no rectangles. Each RectangleLabels
        control of the config gets the boxes of its own image. Any body this schema
        accepts gets 200."""
        predictor = _require(holder)
        try:
            with gate.admit():
                return predict_tasks(req, predictor)
        except Busy as exc:
            logger.warning("%s", exc)
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None

    def predict_tasks(req: PredictRequest, predictor) -> PredictResponse:
        version = predictor.version
        try:
            mappings = mappings_for(req.label_config, predictor.classes)
        except LabelConfigError as exc:
            logger.warning("predict: %s", exc)
            return PredictResponse(
                results=[
                    TaskPrediction(task=t.id, model_version=version, error=str(exc), status=422)
                    for t in req.tasks
                ],
                model_version=version,
            )
        if req.label_config:
            report_once(version, req.label_config, mappings, predictor.classes)
        keys = list(dict.fromkeys(m.control.data_key for m in mappings))
        seen = app.state.label_studio_seen
        images = resolver.with_label_studio(seen.get("url"), seen.get("token"))
        opened, errors = {}, {}  # (task index, data key) -> image; task index -> error
        for i, task in enumerate(req.tasks):
            for key in keys:
                try:
                    opened[i, key] = images.open(task.data.get(key))
                except ImageError as exc:
                    named = f"image '{key}': {exc.message}" if len(keys) > 1 else exc.message
                    errors[i] = ImageError(exc.status, named)
                    break
        opened = {k: v for k, v in opened.items() if k[0] not in errors}
        slots = list(opened)
        found = holder.infer(predictor, [opened[k].image for k in slots]) if slots else []
        detections = {k: [d.to_dict() for d in dets] for k, dets in zip(slots, found)}
        records = (
            _catalog_images(catalog_factory, version, req.tasks, opened, by_task_id=len(keys) == 1)
            if opened
            else {}
        )
        results: list[TaskPrediction | None] = [None] * len(req.tasks)
        for i, task in enumerate(req.tasks):
            if i in errors:
                logger.warning("task %s: %s", task.id, errors[i].message)
                results[i] = TaskPrediction(
                    task=task.id,
                    model_version=version,
                    error=errors[i].message,
                    status=errors[i].status,
                )
                continue
            scores = []
            for key in keys:
                boxes = detections[i, key]
                _, label, stored = records.get((i, key), (None, None, None))
                if label is None and isinstance(task.data.get("label"), str):
                    label = task.data["label"]
                uncertainty = (
                    stored
                    if stored is not None
                    else image_uncertainty(
                        boxes, label, predictor.classes, settings.taxonomy, settings.uncertainty
                    )
                )
                scores.append(task_score(boxes, uncertainty))
            result = []
            for n, m in enumerate(mappings):
                key, threshold = m.control.data_key, m.control.score_threshold
                w, h = opened[i, key].image.size
                floor = settings.min_score if threshold is None else threshold
                prefix = "wb" if n == 0 else f"wb{n}-"
                result += regions(detections[i, key], w, h, m, floor, prefix)
            known = [sc for sc in scores if sc is not None]
            results[i] = TaskPrediction(
                task=task.id,
                model_version=version,
                score=min(known) if known else None,  # the least certain image first
                result=result,
            )
        return PredictResponse(results=results, model_version=version)

    @app.get(
        "/versions",
        response_model=VersionsResponse,
        dependencies=auth,
        responses=error_responses(401) if schemes else None,
        openapi_extra=secured,
    )
    def versions() -> VersionsResponse:
        with catalog_factory() as catalog:
            known = [m.version for m in catalog.models() if m.task == "detect"]
        return VersionsResponse(versions=known, model_version=holder.current() and holder.version)

    @app.post(
        "/webhook",
        response_model=WebhookResponse,
        dependencies=auth,
        responses=error_responses(*body_errors),
        openapi_extra=secured,
    )
    def webhook(event: WebhookEvent) -> WebhookResponse:
        """Record a Label Studio event and answer at once (Label Studio waits 1 s inside
        the annotator's request); a retrain, if due, runs in the background."""
        payload = event.model_dump(mode="json")
        with catalog_factory() as catalog:
            event_id = catalog.record_webhook_event(
                event.action,
                payload,
                project_id=_id_of(payload.get("project")),
                task_id=_id_of(payload.get("task")),
                annotation_id=_id_of(payload.get("annotation")),
            )
        started = False
        if retrainer is not None:
            try:
                started = retrainer.maybe_start()
            except Exception as exc:
                logger.error("could not start a background retrain: %s", exc)
        return WebhookResponse(status="ok", event_id=event_id, retrain_started=started)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def _require(holder: ModelHolder):
    try:
        return holder.require()
    except NoModel as exc:
        raise HTTPException(503, str(exc)) from None


def _id_of(value: Any) -> int | None:
    """Label Studio sends nested objects ({"id": 3, ...}) or bare ids."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _catalog_images(
    catalog_factory, version: str, tasks, opened: dict, by_task_id: bool = True
) -> dict[tuple[int, str], tuple[int | None, str | None, float | None]]:
    """(task index, data key) -> (catalog image id, image label, stored uncertainty)
    for the images the catalog knows (by file path, else, when ``by_task_id`` (one
    image per task), by the task's ``wb_image_id``)."""
    out: dict[tuple[int, str], tuple[int | None, str | None, float | None]] = {}
    try:
        with catalog_factory() as catalog:
            for (i, key), resolved in opened.items():
                rec = catalog.get_image_by_path(str(resolved.path)) if resolved.path else None
                if rec is None and by_task_id:
                    image_id = _id_of(tasks[i].data.get(IMAGE_ID_FIELD))
                    rec = catalog.get_image(image_id) if image_id is not None else None
                if rec is not None:
                    out[i, key] = (rec.id, rec.label, None)
            ids = [v[0] for v in out.values()]
            stored = catalog.uncertainty_by_image(version, ids) if ids else {}
    except Exception as exc:  # the catalog adds labels and priorities; boxes do without it
        logger.warning("catalog lookup for predict failed: %s", exc)
        return {}
    return {i: (iid, label, stored.get(iid)) for i, (iid, label, _) in out.items()}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = BAD_BODY if exc.detail == FASTAPI_BAD_BODY else exc.detail
        body = detail if isinstance(detail, dict) else {"error": str(detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # never echo the input back: bodies can be large and hold tokens
        detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse(
            {"error": "invalid request", "detail": jsonable_encoder(detail)}, status_code=422
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error; see the wb serve log"}, status_code=500)
