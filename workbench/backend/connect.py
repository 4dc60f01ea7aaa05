"""`wb serve --connect`: register the service as the ML backend of the workspace's
Label Studio project.

Label Studio names a connected backend's version after its TITLE and, for uncertainty
sampling, compares the project's ``model_version`` with the version predictions
carry: unless they are equal it silently hands tasks out at random. So the title is
the served model version, the project's ``model_version`` is set explicitly, and both
follow when the service switches to a newly promoted version.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..labelstudio.client import LabelStudioRequestError
from ..labelstudio.config import LabelConfigError, mapping_report, parse_label_config
from ..labelstudio.ordering import use_uncertainty_sampling
from ..labelstudio.project import Project

logger = logging.getLogger(__name__)


@dataclass
class Connected:
    project_id: int
    backend_id: int
    url: str
    model_version: str
    created: bool


@contextmanager
def _hint_reserved_address() -> Iterator[None]:
    """Label Studio refuses an ML backend or webhook at 127.0.0.1 unless started so."""
    try:
        yield
    except LabelStudioRequestError as exc:
        raise LabelStudioRequestError(
            f"{exc}. If it says the URL resolves to a reserved address, start Label Studio "
            "with LABEL_STUDIO_ML_BLOCK_LOCAL_IP=false (`wb ls start` does)"
        ) from None


def connect_backend(
    project: Project,
    backend_url: str,
    model_version: str,
    basic_auth: tuple[str, str] | None = None,
) -> Connected:
    """Create (or update, when one with this URL exists) the project's ML backend,
    set the project's model version and turn on uncertainty sampling. The service
    must already answer at ``backend_url``: Label Studio calls /health and /setup."""
    client, project_id = project.client, project.id
    backend_url = backend_url.rstrip("/")
    fields = {
        "title": model_version,
        "auto_update": True,
        "is_interactive": False,
        "auth_method": "BASIC_AUTH" if basic_auth else "NONE",
    }
    if basic_auth:
        fields.update(basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
    with _hint_reserved_address():
        existing = [
            b for b in client.ml_backends(project_id) if (b.url or "").rstrip("/") == backend_url
        ]
        if existing:
            backend = client.update_ml_backend(existing[0].id, url=backend_url, **fields)
        else:
            backend = client.create_ml_backend(project_id, backend_url, **fields)
        use_uncertainty_sampling(project, model_version)
        if basic_auth:
            # the webhook Label Studio made for the backend carries no credentials
            token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            for hook in client.webhooks(project_id):
                if (hook.url or "").rstrip("/") == backend_url + "/webhook":
                    client.update_webhook(hook.id, headers={"Authorization": f"Basic {token}"})
    logger.info(
        "ML backend %s connected to project %s as %s", backend_url, project_id, model_version
    )
    return Connected(project_id, int(backend.id), backend_url, model_version, not existing)


def follow_version(project: Project, connected: Connected, model_version: str) -> None:
    """After a swap: the backend's title and the project's model version follow."""
    project.client.update_ml_backend(connected.backend_id, title=model_version)
    project.client.update_project(connected.project_id, model_version=model_version)
    connected.model_version = model_version


def label_report(project: Project, classes: list[str], settings) -> list[str]:
    """What the project's label config will do with the model's ``classes``, as lines
    (the same report as /setup's): which labels get which classes' boxes, which classes
    reach none, and a warning when no label gets any."""
    try:
        config = parse_label_config(project.client.get_project(project.id).label_config or "")
    except LabelConfigError as exc:
        return [f"warning: the project's label config cannot take boxes: {exc}"]
    mappings = config.mappings(settings.taxonomy, settings.level, settings.label_map)
    return mapping_report(mappings, classes).lines(settings.min_score)
