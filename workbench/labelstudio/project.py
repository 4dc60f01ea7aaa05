"""The workspace's Label Studio project as one value: who to call, which project, at
which level, with which classes.

Built once (``open_project(ws)``, or ``Project.of(ws, client, conn)`` after `wb push`
created the project) and handed to pull, ordering, `wb review send`, the loop's hooks,
`wb serve --connect` and the demo, so none of them looks the project id or its level up
again. A workspace without a project (no `wb push` yet) is a ``NoProject`` error that
says to push first. `wb push` itself takes the client and connection, since it is what
creates the project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import WorkbenchError
from ..taxonomy import Taxonomy
from .client import Connection, LabelStudioClient, connect, resolve_connection
from .config import (
    ControlMapping,
    LabelConfig,
    LabelConfigError,
    RectangleControl,
    detection_config,
    parse_label_config,
)


class NoProject(WorkbenchError):
    """The workspace has no Label Studio project yet."""


@dataclass(frozen=True)
class Project:
    """A Label Studio project of this workspace, and how to reach it."""

    client: LabelStudioClient
    conn: Connection
    id: int
    level: str
    taxonomy: Taxonomy
    label_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    external: bool = False  # someone else's project (`wb push --project`): its own config

    @property
    def classes(self) -> list[str]:
        """The classes its label config offers (the taxonomy's classes at ``level``)."""
        return self.taxonomy.classes(self.level)

    @property
    def url(self) -> str:
        """The project's page in Label Studio."""
        return f"{self.conn.url}/projects/{self.id}"

    @cached_property
    def label_config(self) -> LabelConfig:
        """The project's label config, parsed: the one `wb push` writes for a project it
        made (no call), the project's own for someone else's (read once)."""
        if not self.external:
            return parse_label_config(detection_config(self.classes))
        return parse_label_config(self.client.get_project(self.id).label_config or "")

    @cached_property
    def mapping(self) -> ControlMapping:
        """Catalog classes <-> the project's labels (``config.ControlMapping``), the same
        for push, pull and `wb serve`. Push and pull put one image in a task, so a
        config with several RectangleLabels controls is refused here."""
        control = single_control(self.label_config, self.id)
        return ControlMapping.build(control, self.taxonomy, self.level, self.label_map)

    @classmethod
    def of(cls, ws, client: LabelStudioClient, conn: Connection) -> Project:
        """The workspace's recorded project through ``client``; ``NoProject`` before the
        first `wb push`."""
        pid = ws.project_id()
        if pid is None:
            raise NoProject(
                "the workspace has no Label Studio project yet: run `wb push` first (it "
                "creates the project and its tasks)"
            )
        return cls(
            client,
            conn,
            pid,
            ws.project_level(),
            ws.taxonomy,
            ws.label_map(),
            ws.project_external(),
        )


def single_control(config: LabelConfig, project_id: int) -> RectangleControl:
    """The one RectangleLabels control of a project push and pull can use: they put one
    image in a task, so a config with several is refused (saying so)."""
    controls = config.controls
    if len(controls) > 1:
        names = ", ".join(f"'{c.name}' on '{c.to_name}'" for c in controls)
        raise LabelConfigError(
            f"Label Studio project {project_id} has {len(controls)} RectangleLabels controls "
            f"({names}); `wb push` and `wb pull` put one image in a task, so they need a "
            "project with one (`wb serve` serves this one as it is)"
        )
    return controls[0]


def open_project(
    ws,
    client: LabelStudioClient | None = None,
    conn: Connection | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    check: bool = True,
) -> Project:
    """The workspace's project through ``client`` (connected here when not given).

    Without ``client`` it connects first (``url``/``token`` as ``--ls-url``/``WB_LS_TOKEN``;
    ``check`` proves the server and token work), so a server that is down is reported as
    such; then ``NoProject`` when the workspace has none. With a client, ``conn`` defaults
    to the workspace's resolved connection."""
    if client is None:
        client, conn = connect(ws, url=url, token=token, check=check)
    elif conn is None:
        conn = resolve_connection(ws, url, token)
    return Project.of(ws, client, conn)
