"""The one place that calls ``label-studio-sdk``: connection, calls, clear errors.

Every SDK call goes through ``LabelStudioClient`` so that a server that is down,
a wrong token or a deleted project become ``WorkbenchError`` messages that say
what to do, instead of tracebacks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ServiceError, WorkbenchError
from . import server

log = logging.getLogger(__name__)

DEFAULT_URL = f"http://127.0.0.1:{server.DEFAULT_PORT}"


class LabelStudioUnreachable(ServiceError):
    """Nothing answers at the Label Studio URL."""


class LabelStudioAuthError(ServiceError):
    """Label Studio refused the API token."""


class ProjectMissing(WorkbenchError):
    """The project recorded in the workspace no longer exists in Label Studio."""


class LabelStudioRequestError(ServiceError):
    """Label Studio refused a request (validation error and the like)."""


@dataclass
class Connection:
    """Where Label Studio is and how to authenticate; ``document_root`` is the folder
    it serves local files from (None when unknown, e.g. an external server)."""

    url: str
    token: str
    document_root: Path | None = None
    local: bool = False  # a server this workspace started

    def served_root(self) -> Path:
        """The folder Label Studio serves local files from, or a WorkbenchError saying how
        to set it for a server `wb ls start` did not start."""
        if self.document_root is None:
            raise WorkbenchError(
                f"the folder Label Studio at {self.url} serves local files from is unknown. For "
                "a server `wb ls start` did not start, set [labelstudio] document_root in "
                "workbench.toml (or WB_LS_DOCUMENT_ROOT) to its "
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT."
            )
        return self.document_root


def resolve_connection(ws, url: str | None = None, token: str | None = None) -> Connection:
    """``--ls-url`` > ``WB_LS_URL`` > the workspace's ``[labelstudio] url``; token
    ``WB_LS_TOKEN`` > the workspace's generated one."""
    state = server.read_state(ws.services_dir)
    url = url or os.environ.get("WB_LS_URL") or ws.get("labelstudio", "url") or DEFAULT_URL
    url = url.rstrip("/")
    if token is None:
        token = os.environ.get("WB_LS_TOKEN") or server.credentials(ws.services_dir).token
    local = state is not None and state.url.rstrip("/") == url
    if local and state.document_root:
        root = Path(state.document_root)
    else:
        configured = os.environ.get("WB_LS_DOCUMENT_ROOT") or ws.get("labelstudio", "document_root")
        root = Path(configured).expanduser().resolve() if configured else None
    return Connection(url=url, token=token.strip(), document_root=root, local=local)


class LabelStudioClient:
    """A thin wrapper over ``label_studio_sdk.LabelStudio`` with actionable errors."""

    def __init__(self, url: str, token: str, timeout: float = 120.0, sdk=None):
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self.sdk = sdk or LabelStudio(base_url=self.url, api_key=token, timeout=timeout)

    @classmethod
    def from_connection(cls, conn: Connection, **kw) -> LabelStudioClient:
        return cls(conn.url, conn.token, **kw)

    # ---- error translation -----------------------------------------------------------
    @contextmanager
    def _call(self, what: str, project_id: int | None = None) -> Iterator[None]:
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            yield
        except httpx.TransportError as exc:
            raise LabelStudioUnreachable(
                f"Label Studio is not reachable at {self.url} ({type(exc).__name__}: {exc}) while "
                f"trying to {what}. Start the local server with `wb ls start`, or point "
                "--ls-url / WB_LS_URL at a running one."
            ) from None
        except ApiError as exc:
            status = exc.status_code
            detail = _detail(exc.body)
            if status == 401:
                raise LabelStudioAuthError(
                    f"Label Studio at {self.url} refused the API token (401: {detail}). Set "
                    "WB_LS_TOKEN to a valid legacy token or personal access token (Account & "
                    "Settings in Label Studio), or unset it to use the workspace's own token "
                    f"(services/{server.AUTH_NAME})."
                ) from None
            if status == 404 and project_id is not None:
                raise ProjectMissing(
                    f"Label Studio project {project_id} no longer exists at {self.url} (it was "
                    "deleted there, or this is another server). Run `wb push --new-project` to "
                    "create a new project and push the images again."
                ) from None
            raise LabelStudioRequestError(
                f"Label Studio at {self.url} refused to {what} ({status}: {detail})"
            ) from None

    # ---- calls -------------------------------------------------------------------------
    def whoami(self) -> Any:
        with self._call("read the current user"):
            return self.sdk.users.whoami()

    def get_project(self, project_id: int) -> Any:
        with self._call(f"read project {project_id}", project_id):
            return self.sdk.projects.get(id=project_id)

    def task_count(self, project_id: int) -> int:
        return int(self.get_project(project_id).task_number or 0)

    def create_project(self, title: str, label_config: str, **fields) -> Any:
        with self._call("create a project"):
            return self.sdk.projects.create(title=title, label_config=label_config, **fields)

    def update_project(self, project_id: int, **fields) -> Any:
        with self._call(f"update project {project_id}", project_id):
            return self.sdk.projects.update(id=project_id, **fields)

    def local_storage_paths(self, project_id: int) -> set[str]:
        with self._call(f"list the local-files storages of project {project_id}", project_id):
            return {s.path for s in self.sdk.import_storage.local.list(project=project_id)}

    def add_local_storage(self, project_id: int, path: Path) -> None:
        with self._call(f"connect local-files storage {path}", project_id):
            self.sdk.import_storage.local.create(
                project=project_id, path=str(path), title=f"wb: {Path(path).name}"
            )

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        """Import tasks in one request; returns their ids in the order given."""
        with self._call(f"import {len(tasks)} tasks into project {project_id}", project_id):
            resp = self.sdk.projects.import_tasks(
                id=project_id, request=tasks, return_task_ids=True
            )
        ids = list(resp.task_ids or [])
        if len(ids) != len(tasks):
            raise LabelStudioRequestError(
                f"Label Studio imported {len(ids)} of {len(tasks)} tasks into project "
                f"{project_id}; "
                "run `wb push` again (it reconciles by image id and never duplicates)"
            )
        return ids

    def iter_tasks(
        self,
        project_id: int,
        fields: str | None = None,
        include: str | None = None,
        page_size: int = 500,
        query: str | None = None,
    ) -> Iterator[Any]:
        """The project's tasks, page by page; ``query`` is a Data Manager filter (JSON)."""
        with self._call(f"list the tasks of project {project_id}", project_id):
            pager = self.sdk.tasks.list(
                project=project_id, fields=fields, include=include, page_size=page_size, query=query
            )
            yield from pager

    def get_task(self, task_id: int) -> Any:
        """One task with its annotation counts (``total_annotations``,
        ``cancelled_annotations``)."""
        with self._call(f"read task {task_id}"):
            return self.sdk.tasks.get(id=str(task_id))

    def update_task_data(self, task_id: int, fields: dict) -> None:
        """Set these keys of a task's data, keeping the others (Label Studio replaces
        ``data`` whole)."""
        with self._call(f"update task {task_id}"):
            data = dict(self.sdk.tasks.get(id=str(task_id)).data or {})
            self.sdk.tasks.update(id=str(task_id), data={**data, **fields})

    def delete_task(self, task_id: int) -> None:
        with self._call(f"delete task {task_id}"):
            self.sdk.tasks.delete(id=str(task_id))

    def delete_tasks(self, project_id: int, task_ids: list[int]) -> None:
        """Delete these tasks of the project in one request (the Data Manager's
        "delete_tasks" action; one DELETE per task is ~100x slower)."""
        with self._call(f"delete {len(task_ids)} tasks of project {project_id}", project_id):
            self.sdk.actions.create(
                id="delete_tasks",
                project=project_id,
                selected_items={"all": False, "included": list(task_ids)},
            )

    def delete_prediction(self, prediction_id: int) -> None:
        with self._call(f"delete prediction {prediction_id}"):
            self.sdk.predictions.delete(id=prediction_id)

    def create_prediction(self, task_id: int, prediction: dict) -> None:
        with self._call(f"add a prediction to task {task_id}"):
            self.sdk.predictions.create(task=task_id, **prediction)

    def list_predictions(self, project_id: int) -> list[Any]:
        """Every prediction of the project's tasks (id, task, model_version, score, ...)."""
        with self._call(f"list the predictions of project {project_id}", project_id):
            return list(self.sdk.predictions.list(project=project_id))

    def update_prediction(self, prediction_id: int, **fields) -> None:
        with self._call(f"update prediction {prediction_id}"):
            self.sdk.predictions.update(id=prediction_id, **fields)

    def list_task_predictions(self, task_id: int) -> list[Any]:
        """The predictions of one task (any model version)."""
        with self._call(f"list the predictions of task {task_id}"):
            return list(self.sdk.predictions.list(task=task_id))

    def create_annotation(self, task_id: int, result: list[dict], **fields) -> Any:
        """Submit an annotation (``was_cancelled=True``: a skip) as the token's user."""
        with self._call(f"annotate task {task_id}"):
            return self.sdk.annotations.create(id=task_id, result=result, **fields)

    def next_task(self, project_id: int) -> dict | None:
        """The task Label Studio's queue hands this user next (``GET
        /api/projects/{id}/next``, the labelling stream's own call; it locks the task for
        the user), or None when the queue is empty. The SDK has no call for it."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        with self._call(f"ask project {project_id} for the next task"):
            r = httpx.get(
                f"{self.url}/api/projects/{project_id}/next",
                headers={"Authorization": f"Token {self._token}"},
                timeout=self._timeout,
            )
            if r.status_code == 404:  # the queue is empty (also for a project that is gone)
                return None
            if r.status_code >= 400:
                try:
                    body = r.json()
                except ValueError:
                    body = r.text
                raise ApiError(status_code=r.status_code, body=body)
            return r.json()

    def retrieve_predictions(self, project_id: int) -> None:
        """Ask the project's ML backend for predictions of every task (synchronous; tasks
        with a prediction of the current version are skipped)."""
        with self._call(f"ask the ML backend of project {project_id} for predictions", project_id):
            self.sdk.actions.create(
                id="retrieve_tasks_predictions",
                project=project_id,
                selected_items={"all": True, "excluded": []},
            )

    def ml_backends(self, project_id: int) -> list[Any]:
        with self._call(f"list the ML backends of project {project_id}", project_id):
            return list(self.sdk.ml.list(project=project_id))

    def create_ml_backend(self, project_id: int, url: str, **fields) -> Any:
        with self._call(f"connect the ML backend {url} to project {project_id}", project_id):
            return self.sdk.ml.create(project=project_id, url=url, **fields)

    def update_ml_backend(self, backend_id: int, **fields) -> Any:
        with self._call(f"update ML backend {backend_id}"):
            return self.sdk.ml.update(backend_id, **fields)

    def webhooks(self, project_id: int) -> list[Any]:
        with self._call(f"list the webhooks of project {project_id}", project_id):
            return list(self.sdk.webhooks.list(project=str(project_id)))

    def update_webhook(self, webhook_id: int, **fields) -> Any:
        with self._call(f"update webhook {webhook_id}"):
            return self.sdk.webhooks.update(webhook_id, **fields)

    def users(self) -> dict[int, str]:
        """User id -> email (or username)."""
        with self._call("list users"):
            return {u.id: (u.email or u.username or f"user:{u.id}") for u in self.sdk.users.list()}


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        detail = body.get("detail") or body
        errors = body.get("validation_errors")
        return f"{detail} {errors}" if errors else str(detail)
    return str(body)[:300]


def connect(
    ws, url: str | None = None, token: str | None = None, check: bool = True
) -> tuple[LabelStudioClient, Connection]:
    """Resolve the connection and (with ``check``) prove the server and token work."""
    conn = resolve_connection(ws, url, token)
    client = LabelStudioClient.from_connection(conn)
    if check:
        client.whoami()
    return client, conn
