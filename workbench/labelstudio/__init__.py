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
    "Connection",
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioRequestError",
    "LabelStudioUnreachable",
    "ProjectMissing",
    "connect",
    "resolve_connection",
    "detection_config",
    "NoProject",
    "Project",
    "open_project",
    "PullResult",
    "export_coco",
    "pull",
    "PushResult",
    "push",
    "LABEL_STUDIO_VERSION",
    "start",
    "stop",
    "status",
    "ImageOutsideRoot",
]
