"""`wb init`, `wb ingest`, `wb status`, `wb export`, `wb demo-data`."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from ..errors import WorkbenchError
from ..formats import EXPORT_FORMATS, FORMATS
from .common import (
    App,
    console,
    domain_errors,
    echo_json,
    json_option,
    pass_app,
    progress,
    writes_workspace,
)


@click.command()
@click.option("--classes", help="Comma-separated class names (a flat taxonomy).")
@click.option(
    "--taxonomy",
    "taxonomy_file",
    type=click.Path(dir_okay=False, exists=True),
    help="A taxonomy TOML file (species with their categories).",
)
@click.option("--exist-ok", is_flag=True, help="Do nothing if the workspace exists.")
@pass_app
@domain_errors
@writes_workspace(creates=True)
def init(app: App, classes: str | None, taxonomy_file: str | None, exist_ok: bool) -> None:
    """Create a workspace: workbench.toml, taxonomy.toml and catalog.sqlite.

    With neither --classes nor --taxonomy the taxonomy is the default
    wildlife-products one (label_config/wildlife.toml).

    Example:

        wb --workspace ws init --classes kangaroo,raccoon
    """
    from ..taxonomy import Taxonomy
    from ..workspace import Workspace

    if classes and taxonomy_file:
        raise click.UsageError("give --classes or --taxonomy, not both")
    tax = (
        Taxonomy.flat(classes.split(","))
        if classes
        else Taxonomy.from_file(taxonomy_file)
        if taxonomy_file
        else Taxonomy.default()
    )
    ws = Workspace.create(app.workspace_path, tax, exist_ok=exist_ok)
    click.echo(
        f"workspace {ws.root}: {len(ws.taxonomy.species)} species, "
        f"{len(ws.taxonomy.categories)} categories ({ws.taxonomy.name})"
    )


SHOWN_UNREADABLE = 20  # unreadable files ingest lists; `wb status --unreadable` has all


@click.command()
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="folders",
    show_default=True,
    help="How PATH is laid out.",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Where the images are, when the annotation file does not say (COCO, Label Studio, YOLO).",
)
@click.option("--add-classes", is_flag=True, help="Add classes unknown to the taxonomy.")
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Catalog an export even when most of the files it names are not found (as "
    "unreadable); without it, ingest refuses when fewer than half exist.",
)
@click.option(
    "--follow-links",
    is_flag=True,
    help="Follow symbolic links that lead out of PATH (--format folders); without it they "
    "are skipped.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 if any file is unreadable; refuse (catalog nothing) if any image would get "
    "no label.",
)
@json_option
@pass_app
@domain_errors
@writes_workspace
def ingest(
    app: App,
    path: str,
    fmt: str,
    images_dir: str | None,
    add_classes: bool,
    allow_missing: bool,
    follow_links: bool,
    strict: bool,
    as_json: bool,
) -> None:
    """Catalog photos: one folder per class, or a COCO / VOC / YOLO / Label Studio export.

    Re-running changes nothing; a moved file is recognised by its content; files
    that cannot be read are recorded as `unreadable` with the reason. Images are
    only read, never changed.

    Example:

        wb ingest ../shared/data/kangaroo --format voc
    """
    from ..ingest import ingest as run_ingest

    with progress(transient=as_json) as bar:
        task = bar.add_task("ingest", total=None)
        result = run_ingest(
            app.ws,
            app.catalog,
            path,
            fmt,
            images_dir=images_dir,
            add_classes=add_classes,
            on_progress=lambda d, t: bar.update(task, completed=d, total=t),
            strict=strict,
            allow_missing=allow_missing,
            follow_links=follow_links,
        )
    if as_json:
        echo_json(result.to_dict())
    else:
        bad = len(result.unreadable)
        aside = (
            f" ({result.boxes_unreadable} of them on unreadable files: kept, counted nowhere)"
            if result.boxes_unreadable
            else ""
        )
        click.echo(
            f"ingested {result.seen} files from {path}: "
            f"{result.added - result.added_unreadable} new, "
            f"{result.updated} updated, {result.unchanged} unchanged, {result.moved} moved, "
            f"{bad} unreadable; {result.boxes_added} boxes{aside}; {result.unlabelled} with no label"
        )
        for spelled, own in result.case_mapped.items():
            click.echo(f"'{spelled}' is the class '{own}' (class names ignore case)")
        if result.unlabelled_message:
            click.echo(f"warning: {result.unlabelled_message}", err=True)
        if result.found_missing:
            click.echo(
                f"found {result.found_missing} image(s) recorded as missing by an earlier "
                "ingest of this export: their rows now point at the files"
            )
        if result.skipped_links and result.followed_links:
            link, target = result.skipped_links[0]
            click.echo(
                f"followed {len(result.skipped_links)} symbolic link(s) that leave {path} "
                f"(--follow-links; e.g. {link} -> {target})",
                err=True,
            )
        elif result.skipped_links:
            link, target = result.skipped_links[0]
            folder = target if os.path.isdir(target) else os.path.dirname(target)
            click.echo(
                f"skipped {len(result.skipped_links)} symbolic link(s) that leave {path} "
                f"(e.g. {link} -> {target}); to include them, ingest the folder they point "
                f"into: wb ingest {shlex.quote(folder)} --format {fmt}, or re-run with "
                "--follow-links",
                err=True,
            )
        if result.new_classes:
            click.echo(f"added classes: {', '.join(result.new_classes)}")
        if result.boxes_dropped:
            click.echo(f"dropped {result.boxes_dropped} boxes with no area inside the image")
        for p, reason in result.unreadable[:SHOWN_UNREADABLE]:
            click.echo(f"unreadable: {p}: {reason}", err=True)
        if bad > SHOWN_UNREADABLE:
            click.echo(
                f"... and {bad - SHOWN_UNREADABLE} more (see wb status --unreadable)", err=True
            )
        if bad:
            click.echo(
                f"{bad} file(s) could not be read: they are in the catalog with status "
                "'unreadable', left out of labelling, training and export. List them with "
                "`wb status --unreadable`; replace or repair the files and run `wb ingest` "
                "again (images are never changed by wb).",
                err=True,
            )
    if strict and result.unreadable:
        raise click.ClickException(f"{len(result.unreadable)} unreadable file(s) (--strict)")


@click.command()
@click.option(
    "--unreadable",
    "list_unreadable",
    is_flag=True,
    help="List the files that could not be read (path and reason) instead of the counts.",
)
@json_option
@pass_app
@domain_errors
def status(app: App, list_unreadable: bool, as_json: bool) -> None:
    """Counts of images and boxes, by status and label, and what the last `wb pull`
    changed; or the unreadable files.

    Example:

        wb status --json
        wb status --unreadable
    """
    if list_unreadable:
        bad = app.catalog.images(status="unreadable")
        if as_json:
            echo_json(
                {
                    "unreadable": [
                        {"id": im.id, "path": im.path, "reason": im.status_reason} for im in bad
                    ]
                }
            )
            return
        if not bad:
            click.echo("no unreadable files")
            return
        click.echo(f"{len(bad)} unreadable file(s) (left out of labelling, training and export):")
        for im in bad:
            click.echo(f"{im.path}: {im.status_reason or 'unreadable'}")
        click.echo("Replace or repair them and run `wb ingest` again; wb never changes images.")
        return

    from ..labelstudio.pull import last_pull

    counts = app.catalog.status_counts()
    pulled = last_pull(app.catalog)
    if as_json:
        echo_json({**counts, "last_pull": pulled})
        return
    from rich.table import Table

    c = console()
    t = Table(title=f"images in {app.ws.root}")
    t.add_column("status")
    t.add_column("images", justify="right")
    for k, v in counts["images"]["by_status"].items():
        t.add_row(k, str(v))
    t.add_row("[bold]total", f"[bold]{counts['images']['total']}")
    c.print(t)
    t = Table(title="labels")
    t.add_column("label")
    t.add_column("images", justify="right")
    t.add_column("boxes", justify="right")
    labels = sorted(set(counts["images"]["by_label"]) | set(counts["boxes"]["by_label"]))
    for k in labels:
        t.add_row(
            k,
            str(counts["images"]["by_label"].get(k, 0)),
            str(counts["boxes"]["by_label"].get(k, 0)),
        )
    t.add_row(
        "[bold]total", f"[bold]{counts['images']['total']}", f"[bold]{counts['boxes']['total']}"
    )
    c.print(t)
    c.print(f"annotated images: {counts['images']['annotated']}")
    bad = counts["images"]["by_status"].get("unreadable", 0)
    if bad:
        c.print(f"{bad} unreadable file(s): list them with `wb status --unreadable`")
    click.echo(_last_pull_line(pulled))  # one line, not wrapped: a script can grep it


def _last_pull_line(p: dict | None) -> str:
    if p is None:
        return "last pull: none yet (`wb pull` brings Label Studio's annotations in)"
    return (
        f"last pull ({p['finished_at']}, project {p['project_id']}): "
        f"{p['updated_images']} images updated ({p['boxes']} boxes, {p['negatives']} "
        f"negatives), {p['cleared']} cleared, {p['skipped']} skipped, {p['unchanged']} "
        f"unchanged; {p['annotated_tasks']} of {p['tasks']} tasks annotated, "
        f"{p['disagreements']} disagreements"
    )


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True)
@click.option(
    "--out",
    required=True,
    type=click.Path(),
    help="Output: a .json file (COCO) or a folder (VOC, YOLO; images are linked, not copied).",
)
@click.option("--annotated-only", is_flag=True, help="Only images with ground truth.")
@pass_app
@domain_errors
def export_cmd(app: App, fmt: str, out: str, annotated_only: bool) -> None:
    """Export active images and their boxes (never duplicates or unsettled conflicts).

    Example:

        wb export --format coco --out annotations.json
    """
    from ..export import export

    path, n = export(app.ws, app.catalog, fmt, out, annotated_only=annotated_only)
    click.echo(f"exported {n} images as {fmt} to {path}")


@click.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True)
@click.option("--n-images", default=300, show_default=True)
@domain_errors
def demo_data(out: str, seed: int, n_images: int) -> None:
    """Generate the built-in demo data set (deterministic, no download).

    Folder-per-class images, exact boxes as COCO (annotations.json), and the list
    of planted duplicates and conflicts (planted.json).

    Example:

        wb demo-data demo/ && wb ingest demo/images --format folders
    """
    from ..demo_data import generate_demo_data

    outp = Path(out)
    if outp.exists() and any(outp.iterdir()) and not (outp / "annotations.json").exists():
        raise WorkbenchError(f"{outp} exists and is not a demo data folder; choose an empty folder")
    with progress() as bar:
        task = bar.add_task("demo data", total=n_images)
        summary = generate_demo_data(
            outp,
            seed=seed,
            n_images=n_images,
            on_progress=lambda d, t: bar.update(task, completed=d, total=t),
        )
    click.echo(f"demo data in {outp.resolve()}: {summary.n_images} images, {summary.n_boxes} boxes")
    click.echo(f"  images:      {outp.resolve() / 'images'}  (one folder per class)")
    click.echo(f"  boxes:       {outp.resolve() / 'annotations.json'}  (COCO)")


def register(group: click.Group) -> None:
    for cmd in (init, ingest, status, export_cmd, demo_data):
        group.add_command(cmd)
