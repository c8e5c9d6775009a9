"""``pipeledger ui``: look at the runs of a stack's store in the browser (the library:
:mod:`pipeledger.ui`, served by :mod:`pipeledger.server.local`)."""

from __future__ import annotations

import click

from pipeledger.cli.errors import PipeledgerGroup
from pipeledger.cli.output import console, esc


@click.group("ui", cls=PipeledgerGroup, invoke_without_command=True)
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="TCP port (default: a free one).")
@click.option("--stack", default=None, help="Stack whose metadata store is shown (default: the active stack).")
@click.option("--no-browser", is_flag=True, help="Do not open the browser; print the address only.")
@click.pass_context
def ui_group(ctx: click.Context, port: int | None, stack: str | None, no_browser: bool) -> None:
    """Serve the web UI of a stack's metadata store on 127.0.0.1 and open it in the browser.

    Only this machine can connect (no authentication; for a team, use `pipeledger server start`,
    which serves the same pages at /ui). Stop it with Ctrl-C.

    \b
    Example:
      pipeledger ui --port 8238 --no-browser
    """
    if ctx.invoked_subcommand is not None:
        return
    from pipeledger.server.local import serve_ui

    def announce(url: str) -> None:
        console().print(f"pipeledger UI at {esc(url)} (Ctrl-C to stop)", highlight=False)

    serve_ui(stack, port, not no_browser, announce)
