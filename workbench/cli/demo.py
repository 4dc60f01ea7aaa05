"""`wb demo`: the whole loop, unattended, on built-in data."""

from __future__ import annotations

import click

from ..demo import DemoOptions
from .common import (
    App,
    domain_errors,
    echo_json,
    json_option,
    pass_app,
    progress,
    stage_bars,
    writes_workspace,
)


def _print_summary(s: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from ..detection.metrics import format_metric as f

    c = Console()
    c.rule("[bold]workbench demo: summary")
    d, dd, ls = s["data"], s["dedup"], s["labelstudio"]
    c.print(f"data      {d['images']} images in {d['path']}")
    c.print(
        f"dedup     {dd['duplicate_groups']} duplicate groups, {dd['conflict_groups']} "
        f"conflicts (planted: {d['planted_exact']} exact, {d['planted_near']} near, "
        f"{d['planted_conflicts']} conflicts); report {dd['report']}"
    )
    c.print(
        f"labelling Label Studio project {ls['project_id']}: {ls['tasks']} tasks "
        f"({ls.get('project_url', ls['url'])})"
    )
    p = s.get("prioritize") or {}
    if p:
        c.print(
            f"order     {p.get('candidates')} images ranked by uncertainty; Label Studio "
            f"handed out the most uncertain first: {p.get('first_task_is_most_uncertain')}; "
            f"page {p.get('report')}"
        )
    # two-line headers and no vertical rules: the tables fit an 80-column terminal
    t = Table(
        title="models: each round's own test split, then both on the final one",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for col in (
        "round",
        "model",
        "labels",
        "epochs",
        "promoted",
        "mAP50",
        "mAP",
        "mAR100",
        "final\nmAP50",
        "final\naccuracy",
    ):
        t.add_column(col, justify="right")
    for r in s["rounds"]:
        m, cm = r["metrics"], s["comparison"].get(r["version"] or "", {})
        t.add_row(
            str(r["round"]),
            str(r["version"]),
            str(r["annotated"]),
            str(r.get("epochs")),
            "yes" if r["promoted"] == r["version"] else "no",
            f(m.get("mAP50")),
            f(m.get("mAP")),
            f(m.get("mAR100")),
            f(cm.get("mAP50")),
            f(cm.get("accuracy")),
        )
    c.print(t)
    b = Table(
        title="annotators' boxes: started from a pre-drawn box, or drawn new",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for col in (
        "round",
        "boxes",
        "from\npre-drawn",
        "kept",
        "moved",
        "drawn\nnew",
        "pre-drawn\ndeleted",
    ):
        b.add_column(col, justify="right")
    for r in s["rounds"]:
        k = r.get("corrections") or {}
        share = k.get("from_predrawn_share")
        b.add_row(
            str(r["round"]),
            str(k.get("boxes", "-")),
            f"{k.get('from_predrawn', '-')} ({'-' if share is None else f'{share:.0%}'})",
            str(k.get("kept", "-")),
            str(k.get("moved", "-")),
            str(k.get("added", "-")),
            str(k.get("deleted", "-")),
        )
    c.print(b)
    for r in s["rounds"]:
        if (r.get("economics") or {}).get("line"):
            c.print(f"round {r['round']}: {r['economics']['line']}", soft_wrap=True)
    rv = s.get("review") or {}
    if rv:
        c.print(
            f"review    FiftyOne dataset {rv.get('dataset')}: {rv.get('samples')} samples, "
            f"evaluations {', '.join((rv.get('evaluations') or {}).keys())}; open it with "
            f"`wb --workspace {s['workspace']} review`"
        )
    c.print(f"models    {s['reports'].get('models')}   reports {s['reports'].get('evaluation')}")
    state = "running (Ctrl-C stops)" if s.get("keep_running") else "stopped"
    for k, v in (s.get("services") or {}).items():
        c.print(f"service   {k}: {v} ({state})")
    c.print(f"took {s['seconds'] / 60:.1f} min")


@click.command()
@click.option(
    "--epochs",
    default=DemoOptions.epochs,
    show_default=True,
    help="Round 1's training budget, in epochs (the same model on a busy machine).",
)
@click.option(
    "--epochs-round2",
    default=DemoOptions.epochs_round2,
    show_default=True,
    help="Round 2's training budget, in epochs, continuing round 1's model.",
)
@click.option(
    "--max-minutes",
    default=DemoOptions.max_minutes,
    show_default=True,
    help="Safety cap on each round's training time.",
)
@click.option(
    "--images",
    "n_images",
    default=DemoOptions.n_images,
    show_default=True,
    help="Size of the generated data set.",
)
@click.option(
    "--seed-batch",
    default=DemoOptions.seed_batch,
    show_default=True,
    help="Images annotated before the first model.",
)
@click.option(
    "--second-batch",
    default=DemoOptions.second_batch,
    show_default=True,
    help="Least certain images annotated in round 2.",
)
@click.option(
    "--backbone",
    default=DemoOptions.backbone,
    show_default=True,
    help="Detector backbone (`wb backbones`).",
)
@click.option(
    "--image-size",
    type=int,
    default=None,
    help="Longer image side in pixels (default: the backbone's; `wb backbones` lists them).",
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="Leave Label Studio, the ML backend and the FiftyOne App running until Ctrl-C.",
)
@click.option("--no-review", is_flag=True, help="Skip the FiftyOne step.")
@json_option
@pass_app
@domain_errors
@writes_workspace(creates=True)
def demo(
    app: App,
    epochs: int,
    epochs_round2: int,
    max_minutes: float,
    n_images: int,
    seed_batch: int,
    second_batch: int,
    backbone: str,
    image_size: int | None,
    keep_running: bool,
    no_review: bool,
    as_json: bool,
) -> None:
    """The whole loop, for real, on built-in data: dedup, Label Studio, simulated
    annotators, retrain, the ML backend, uncertainty order, a second round, FiftyOne.

    Everything it starts it stops at the end (unless --keep-running). A second run
    reuses what is there.

    Example:

        wb --workspace demo-ws demo --epochs 6
    """
    from ..demo import run_demo

    opts = DemoOptions(
        epochs=epochs,
        epochs_round2=epochs_round2,
        max_minutes=max_minutes,
        n_images=n_images,
        seed_batch=seed_batch,
        second_batch=second_batch,
        backbone=backbone,
        image_size=image_size,
        keep_running=keep_running,
        review=not no_review,
    )
    with progress(transient=True) as bar:
        progress_for = stage_bars(bar)

        echo = (
            (lambda msg: bar.console.print(msg, highlight=False))
            if not as_json
            else (lambda msg: click.echo(msg, err=True))
        )
        summary = run_demo(app.workspace_path, opts, echo=echo, progress_for=progress_for)
    if as_json:
        echo_json(summary.to_dict())
    else:
        _print_summary(summary.to_dict())


def register(group: click.Group) -> None:
    group.add_command(demo)
