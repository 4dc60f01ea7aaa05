"""`wb study run | show`: a grid of training runs from a TOML, resumable, as one table."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import WorkbenchError
from .classify import _test_sets
from .common import domain_errors, echo_json, json_option, pass_app, progress, writes_workspace


@click.group("study")
def study_group():
    """Grids of training runs (backbone x regimen x negatives, loss x per-species, ...).

    Example:

        wb study run docs/studies/classifier.toml
    """


def _grid(path: str, test_sets=()):
    from ..study.grid import read_grid

    return read_grid(Path(path), _test_sets(test_sets))


def _print_table(rows) -> None:
    from ..study.report import table

    header, body = table(rows)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in body:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)))


@study_group.command("run")
@click.argument("grid_file", metavar="GRID.toml", type=click.Path(dir_okay=False))
@click.option(
    "--test-set",
    "test_sets",
    multiple=True,
    help="NAME=FOLDER (classify: one folder per class), besides the grid's [test_sets].",
)
@json_option
@pass_app
@domain_errors
@writes_workspace
def run_cmd(app, grid_file, test_sets, as_json):
    """Run every cell of the grid not done yet: one registered model per cell (never
    promoted: `wb models promote VERSION`), scored on every test set; then the table
    and chart in reports/studies/NAME/. Run it again after an interruption: finished
    cells are kept, an interrupted cell resumes after its last finished epoch (a
    per-species detection cell: the species registered are kept, the rest resume).

    Example:

        wb study run docs/studies/classifier.toml --test-set ood=photos/ood
    """
    from ..study.report import study_rows, write_reports
    from ..study.run import run_study, study_dir

    grid = _grid(grid_file, test_sets)
    cells = grid.cells()
    with progress() as bar:
        task = bar.add_task(f"study {grid.name}", total=len(cells))
        epochs = bar.add_task("epochs", total=None)

        def on_event(e: dict) -> None:
            if e["event"] == "cell":
                verb = {"done": "already done", "resume": "resuming", "start": "training"}
                if e["status"] in verb:
                    bar.console.print(f"cell {e['n']}/{e['of']} {e['cell']}: {verb[e['status']]}")
                if e["status"] in ("done", "finished"):
                    bar.update(task, advance=1)
                if e["status"] in ("start", "resume"):
                    bar.reset(epochs, total=None)
            elif e["event"] == "epoch":
                bar.update(epochs, completed=e["done"], total=e["total"])

        state = run_study(app.ws, app.catalog, grid, on_event=on_event)
    rows = study_rows(grid, state)
    files = write_reports(study_dir(app.ws, grid.name), rows, f"study {grid.name}")
    if as_json:
        echo_json({"study": grid.name, "rows": rows, "files": files})
        return
    _print_table(rows)
    for kind, path in files.items():
        click.echo(f"{kind}: {path}")
    click.echo("cells are not promoted: `wb models promote VERSION` serves one")


@study_group.command("show")
@click.argument("grid_file", metavar="GRID.toml", type=click.Path(dir_okay=False))
@json_option
@pass_app
@domain_errors
def show_cmd(app, grid_file, as_json):
    """The study's table as far as it has run (cells not run yet say `pending`).

    Example:

        wb study show docs/studies/classifier.toml
    """
    from ..study.report import study_rows
    from ..study.run import load_state, study_dir

    grid = _grid(grid_file)
    folder = study_dir(app.ws, grid.name)
    if not folder.is_dir():
        raise WorkbenchError(f"study {grid.name} has not run yet: `wb study run {grid_file}`")
    rows = study_rows(grid, load_state(folder))
    if as_json:
        echo_json({"study": grid.name, "rows": rows})
        return
    _print_table(rows)
    done = sum(1 for r in rows if r["status"] == "done")
    click.echo(f"{done} of {len(rows)} runs done; folder: {folder}")


def register(group: click.Group) -> None:
    group.add_command(study_group)
