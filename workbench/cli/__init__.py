"""The `wb` command line. Thin: parse, call one function, print.

Each command area lives in its own module and exposes ``register(group)``.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from .. import __version__
from ..workspace import DEFAULT_WORKSPACE
from .common import App

AREAS = (
    "workspace",
    "dedup",
    "labelstudio",
    "agreement",
    "models",
    "evaluate",
    "serve",
    "field",
    "prioritize",
    "review",
    "explain",
    "classify",
    "study",
    "report",
    "demo",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--workspace",
    "-w",
    type=click.Path(file_okay=False),
    envvar="WB_WORKSPACE",
    default=None,
    show_envvar=True,
    help=f"Workspace folder (default: ./{DEFAULT_WORKSPACE}).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="wb")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, verbose: int) -> None:
    """workbench: photos -> clean catalog -> Label Studio -> detector -> review.

    Example:

        wb init --classes kangaroo && wb ingest photos/ --format voc && wb status
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = App(workspace)
    ctx.call_on_close(ctx.obj.close)


def _register_areas() -> None:
    import importlib

    for area in AREAS:
        module = importlib.import_module(f"{__name__}.{area}")
        module.register(cli)


_register_areas()


def main() -> None:
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    cli(prog_name="wb")


if __name__ == "__main__":  # pragma: no cover
    main()
