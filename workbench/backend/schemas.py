"""Request and response types of the ML backend protocol, as Label Studio 1.23 sends
and reads them (see docs/serve.md). Unknown fields are accepted and ignored: Label
Studio adds fields between versions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_TASKS = 1000  # Label Studio sends batches far smaller than this


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Task(_Open):
    id: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class PredictRequest(_Open):
    tasks: list[Task] = Field(min_length=1, max_length=MAX_TASKS)
    project: str | int | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = None


class SetupRequest(_Open):
    project: str | int | None = None
    schema_: str | None = Field(default=None, alias="schema")
    hostname: str | None = None
    access_token: str | None = None
    extra_params: Any = None


class WebhookEvent(_Open):
    action: str = Field(min_length=1, max_length=100)


class RectangleValue(BaseModel):
    x: float
    y: float
    width: float
    height: float
    rotation: float = 0.0
    rectanglelabels: list[str]


class RegionResult(BaseModel):
    id: str
    from_name: str
    to_name: str
    type: str = "rectanglelabels"
    original_width: int
    original_height: int
    image_rotation: int = 0
    value: RectangleValue
    score: float


class TaskPrediction(BaseModel):
    """One task's prediction. A task whose image could not be read has ``error`` and
    no ``result``: Label Studio skips such an item and keeps the others."""

    task: int | None = None
    result: list[RegionResult] | None = None
    score: float | None = None
    model_version: str
    error: str | None = None


class PredictResponse(BaseModel):
    results: list[TaskPrediction]
    model_version: str


class LabelsAnswer(BaseModel):
    """What one RectangleLabels control of the project's config will get."""

    name: str
    to_name: str
    data_key: str
    score_threshold: float | None = None  # model_score_threshold; None: --min-score
    fed: dict[str, list[str]]  # project label -> the model classes whose boxes it gets
    unreached: list[str]  # model classes that reach no label of this control
    notes: list[str] = Field(default_factory=list)


class SetupResponse(BaseModel):
    """The model version, and (when Label Studio sends the project's config) what the
    config will do with the model's classes; ``warning`` when no label gets any."""

    model_version: str
    labels: list[LabelsAnswer] | None = None
    unmatched_classes: list[str] | None = None
    warning: str | None = None


class HealthResponse(BaseModel):
    status: str = "UP"
    model_class: str = "workbench"
    model_version: str | None = None


class VersionsResponse(BaseModel):
    versions: list[str]
    model_version: str | None = None


class WebhookResponse(BaseModel):
    status: str
    event_id: int
    retrain_started: bool = False


class ErrorResponse(BaseModel):
    error: str
    detail: Any = None
