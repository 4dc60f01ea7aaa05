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
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..errors import ServiceError

logger = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"


@dataclass
class Connected:
    project_id: int
    backend_id: int
    url: str
    model_version: str
    created: bool


@contextmanager
def _sdk_errors(what: str, url: str) -> Iterator[None]:
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except httpx.TransportError as exc:
        raise ServiceError(f"Label Studio is not reachable at {url} while trying to {what} "
                           f"({type(exc).__name__}); start it with `wb ls start`") from None
    except ApiError as exc:
        body = exc.body if isinstance(exc.body, (dict, str)) else str(exc.body)
        raise ServiceError(f"Label Studio refused to {what} ({exc.status_code}: {body}). If it "
                           "says the URL resolves to a reserved address, start Label Studio "
                           "with LABEL_STUDIO_ML_BLOCK_LOCAL_IP=false (`wb ls start` does)"
                           ) from None


def connect_backend(client, project_id: int, backend_url: str, model_version: str,
                    basic_auth: tuple[str, str] | None = None) -> Connected:
    """Create (or update, when one with this URL exists) the project's ML backend,
    set the project's model version and turn on uncertainty sampling. The service
    must already answer at ``backend_url``: Label Studio calls /health and /setup."""
    sdk, ls_url = client.sdk, client.url
    backend_url = backend_url.rstrip("/")
    fields = {"title": model_version, "auto_update": True, "is_interactive": False,
              "auth_method": "BASIC_AUTH" if basic_auth else "NONE"}
    if basic_auth:
        fields.update(basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
    with _sdk_errors(f"connect the ML backend {backend_url} to project {project_id}", ls_url):
        existing = [b for b in sdk.ml.list(project=project_id)
                    if (b.url or "").rstrip("/") == backend_url]
        if existing:
            backend = sdk.ml.update(existing[0].id, url=backend_url, **fields)
        else:
            backend = sdk.ml.create(project=project_id, url=backend_url, **fields)
        sdk.projects.update(project_id, model_version=model_version, sampling=UNCERTAINTY_SAMPLING)
        if basic_auth:
            # the webhook Label Studio made for the backend carries no credentials
            token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            for hook in sdk.webhooks.list(project=str(project_id)):
                if (hook.url or "").rstrip("/") == backend_url + "/webhook":
                    sdk.webhooks.update(hook.id, headers={"Authorization": f"Basic {token}"})
    logger.info("ML backend %s connected to project %s as %s", backend_url, project_id,
                model_version)
    return Connected(project_id, int(backend.id), backend_url, model_version, not existing)


def follow_version(client, connected: Connected, model_version: str) -> None:
    """After a swap: the backend's title and the project's model version follow."""
    with _sdk_errors(f"set project {connected.project_id}'s model version", client.url):
        client.sdk.ml.update(connected.backend_id, title=model_version)
        client.sdk.projects.update(connected.project_id, model_version=model_version)
    connected.model_version = model_version
