"""``pipeledger ui export RUN --out DIR``: a run as one self-contained HTML file (the library:
:mod:`pipeledger.ui.export`)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeledger.cli.output import console, esc
from pipeledger.cli.ui import ui_group
from pipeledger.client import Client


@ui_group.command("export")
@click.argument("run")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write index.html into (created; must be new or empty unless --force).",
)
@click.option("--force", is_flag=True, help="Write into a directory that is not empty (replacing its index.html).")
def export(run: str, out: Path, force: bool) -> None:
    """Write a self-contained HTML snapshot of RUN (name or id) to DIR/index.html: its DAG and
    timeline, steps, parameters, metrics and artifacts, with the stylesheet inline and no script or
    outside link, so it opens from disk and offline (a report, a CI artifact). Logs and the stack's
    configuration are left out. The file is private to you (mode 0600).

    \b
    Example:
      pipeledger ui export training-3 --out report/
    """
    from pipeledger.ui.export import write_export

    view = Client().get_run(run)
    target = write_export(view, out, force=force)
    console().print(f"Wrote {esc(target)} (open it in a browser: {esc(target.resolve().as_uri())}).", highlight=False)
