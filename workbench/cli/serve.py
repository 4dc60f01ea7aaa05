"""`wb serve`: the ML backend Label Studio calls for pre-drawn boxes."""

from __future__ import annotations

import logging

import click

from ..detection.names import RUNTIMES
from ..labelstudio.tasks import DISPLAY_MIN_SCORE
from .common import domain_errors, pass_app

logger = logging.getLogger(__name__)


def _auth_pair(ctx, param, value):
    if value is None:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise click.BadParameter("expected USER:PASSWORD, both non-empty")
    return user, password


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (keep 127.0.0.1 unless behind a proxy).",
)
@click.option("--port", default=9090, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--connect",
    is_flag=True,
    help="Register with the workspace's Label Studio project (title = model "
    "version) and turn on uncertainty sampling.",
)
@click.option(
    "--retrain-after",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Retrain in the background after N new annotations (promoted only if better).",
)
@click.option(
    "--auth",
    callback=_auth_pair,
    metavar="USER:PASS",
    help="Require HTTP basic auth (Label Studio supports it for ML backends).",
)
@click.option("--token", metavar="T", help="Require 'Authorization: Bearer T' (other clients).")
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="How often to look for a newly promoted model version.",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(min=0.01),
    default=16.0,
    show_default=True,
    help="Refuse request bodies over this size.",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0, 1),
    default=DISPLAY_MIN_SCORE,
    show_default=True,
    help="Boxes scored below this are not sent.",
)
@click.option(
    "--field",
    is_flag=True,
    help="Also serve the field app: the phone page /app and /v1/detect, /v1/feedback "
    "(devices need a token: `wb field token add NAME`).",
)
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default="torch",
    show_default=True,
    help="Run the model in torch, or in ONNX Runtime on the CPU (the version's model.onnx "
    "from `wb models export`; needs `pip install 'workbench[onnx]'`).",
)
@click.option(
    "--version",
    default=None,
    metavar="VERSION",
    help="Serve this detector version, pinned (newly promoted ones are not picked up); "
    "default: the promoted detector.",
)
@pass_app
@domain_errors
def serve_cmd(
    app,
    host,
    port,
    connect,
    retrain_after,
    auth,
    token,
    poll_seconds,
    max_body_mb,
    min_score,
    field,
    runtime,
    version,
):
    """Serve the promoted detector to Label Studio as an ML backend (/health, /setup,
    /predict, /versions, /webhook). A newly promoted version is picked up without a
    restart. With --field, also the field app for phones (/app).

    Example:

        wb serve --connect --retrain-after 50 --auth annotator:s3cret

        wb serve --field

        wb serve --runtime onnx

        wb serve --version v003
    """
    from ..backend import BackendSettings, ModelHolder, RetrainWorker, create_app, run
    from ..labelstudio.client import resolve_connection

    if auth and token:
        raise click.UsageError("--auth and --token exclude each other; choose one")
    if connect and token:
        raise click.UsageError(
            "Label Studio authenticates to ML backends with basic auth only: "
            "use --auth USER:PASS with --connect"
        )
    ws = app.ws
    _ = app.catalog  # opens (and migrates) the catalog once, so errors show here

    def catalog_factory():
        return ws.open_catalog()

    conn = resolve_connection(ws)
    holder = ModelHolder.for_workspace(
        ws, catalog_factory, poll_seconds=poll_seconds, runtime=runtime, version=version
    )
    if runtime == "onnx":
        from ..detection.onnx import require_module

        require_module("onnxruntime", "--runtime onnx")
    if holder.current() is None and runtime == "onnx" and holder.last_error:
        raise click.ClickException(f"{holder.last_error}; or serve with --runtime torch")
    if holder.current() is None:
        click.echo(
            f"warning: {holder.last_error or 'no promoted model yet'}; /predict "
            "answers 503 until one is promoted (`wb retrain`)",
            err=True,
        )
    settings = BackendSettings(
        taxonomy=ws.taxonomy,
        document_root=conn.document_root,
        ls_url=conn.url,
        ls_token=conn.token or None,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        basic_auth=auth,
        bearer_token=token,
        min_score=min_score,
        level=ws.project_level(),
        label_map=ws.label_map(),
        allowed_image_hosts=ws.allowed_image_hosts(),
    )
    worker = None
    if retrain_after:
        worker = RetrainWorker(
            _retrain_runner(ws, catalog_factory, conn),
            catalog_factory,
            retrain_after,
            workspace_lock=lambda: ws.lock(f"wb serve --retrain-after {retrain_after}"),
        )
    service = create_app(holder, catalog_factory, settings, retrainer=worker)
    if field:
        from ..field import FieldSettings, field_router

        service.include_router(
            field_router(
                holder,
                catalog_factory,
                FieldSettings(
                    photos_dir=ws.field_photos_dir,
                    taxonomy=ws.taxonomy,
                    keep_location=ws.field_keep_location(),
                    min_score=min_score,
                ),
                gate=service.state.predict_gate,
            )
        )
        with catalog_factory() as catalog:
            devices = [d for d in catalog.field_devices() if d.active]
        if not devices:
            click.echo(
                "warning: no device has a field token yet; make one with `wb field token add NAME`",
                err=True,
            )
        click.echo(f"field app: http://{host}:{port}/app", err=True)

    on_started = None
    if connect:
        if holder.version is None:
            raise click.ClickException(
                "--connect needs a promoted model (its version names the "
                "backend in Label Studio): run `wb retrain` first"
            )
        on_started = _connector(ws, conn, holder, host, port, auth, settings)
    click.echo(
        f"serving {holder.version or 'no model yet'} on http://{host}:{port} "
        f"({runtime}; Ctrl-C stops)",
        err=True,
    )
    run(service, host=host, port=port, on_started=on_started)


def _connector(ws, conn, holder, host, port, auth, settings):
    from ..backend.connect import connect_backend, follow_version, label_report
    from ..labelstudio.client import LabelStudioClient
    from ..labelstudio.project import Project

    project = Project.of(ws, LabelStudioClient.from_connection(conn), conn)  # NoProject: push
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host

    def on_started():
        connected = connect_backend(
            project, f"http://{url_host}:{port}", holder.version, basic_auth=auth
        )
        holder.on_swap = lambda version: follow_version(project, connected, version)
        click.echo(
            f"connected to Label Studio project {project.id} at {conn.url} as "
            f"{connected.model_version} (uncertainty sampling on)",
            err=True,
        )
        for line in label_report(project, holder.require().classes, settings):
            click.echo(line, err=True)

    return on_started


def _retrain_runner(ws, catalog_factory, conn):
    """The background retrain: pull from Label Studio when a project is set, train with
    the workspace's model settings, promote only if better."""
    from ..detection.retrain import RetrainOptions, retrain
    from ..detection.train import TrainConfig

    def pull_hook(ws_, catalog):
        from ..labelstudio.client import LabelStudioClient
        from ..labelstudio.project import Project
        from ..labelstudio.pull import pull

        res = pull(Project.of(ws_, LabelStudioClient.from_connection(conn), conn), catalog)
        return f"{res.tasks} tasks read, {res.boxes} boxes written"

    def run_retrain() -> dict:
        options = RetrainOptions(
            train=TrainConfig.for_workspace(ws),
            promote="if_better",
            pull=pull_hook if ws.project_id() is not None else None,
        )
        with catalog_factory() as catalog:
            return retrain(ws, catalog, options).to_dict()

    return run_retrain


def register(group: click.Group) -> None:
    """Add this area's commands to the `wb` group."""
    group.add_command(serve_cmd)
