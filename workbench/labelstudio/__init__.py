"""Label Studio: the local server, the SDK client wrapper, label configs, push and pull."""

from __future__ import annotations

from .client import (
    Connection,
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioRequestError,
    LabelStudioUnreachable,
    ProjectMissing,
    connect,
    resolve_connection,
)
from .config import detection_config
from .project import NoProject, Project, open_project
from .pull import PullResult, export_coco, pull
from .push import PushResult, push
from .server import LABEL_STUDIO_VERSION, start, stop
from .status import status
from .tasks import ImageOutsideRoot

__all__ = [
    "LABEL_STUDIO_VERSION",
    "Connection",
    "ImageOutsideRoot",
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioRequestError",
    "LabelStudioUnreachable",
    "NoProject",
    "Project",
    "ProjectMissing",
    "PullResult",
    "PushResult",
    "connect",
    "detection_config",
    "export_coco",
    "open_project",
    "pull",
    "push",
    "resolve_connection",
    "start",
    "status",
    "stop",
]
