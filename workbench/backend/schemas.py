"""Request and response types of the ML backend protocol, as Label Studio 1.23 sends
and reads them (see docs/serve.md).

Unknown fields are accepted and ignored: Label Studio adds fields between versions (a
task carries ``annotations``, ``predictions``, ``meta``...). The fields we read are
strict: a value of another JSON type is refused with 422 (no ``false`` taken as the
integer 0, no ``1.5`` or ``"3"`` as a task id; ``3.0`` is an integer, as JSON Schema
says), so what the OpenAPI schema says is what the service accepts."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

MAX_TASKS = 1000  # Label Studio sends batches far smaller than this


def _json_integer(value: Any) -> Any:
    """A JSON Schema integer: an int, or a float with no fraction; never a bool or a
    string."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Input should be an integer")
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Task(_Open):
    id: JsonInt | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class PredictRequest(_Open):
    tasks: list[Task] = Field(min_length=1, max_length=MAX_TASKS)
    project: StrictStr | JsonInt | None = None
    label_config: StrictStr | None = None
    params: dict[str, Any] | None = None


class SetupRequest(_Open):
    project: StrictStr | JsonInt | None = None
    schema_: StrictStr | None = Field(default=None, alias="schema")
    hostname: StrictStr | None = None
    access_token: StrictStr | None = None
    extra_params: Any = None


class WebhookEvent(_Open):
    action: StrictStr = Field(min_length=1, max_length=100)


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
    """One task's prediction. A task that got none (its image could not be read or was
    refused, or the label config holds no rectangles) has ``error`` and ``status`` (the
    HTTP status that problem alone would get) and no ``result``: Label Studio skips such
    an item and keeps the others."""

    task: int | None = None
    result: list[RegionResult] | None = None
    score: float | None = None
    model_version: str
    error: str | None = None
    status: int | None = None


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
    """Every answer that is not a 2xx: ``error`` says what is wrong and what to do;
    ``detail`` (422) lists the fields that failed validation, without their values."""

    error: str
    detail: Any = None
