"""``pipeledger pipeline ...``: the recorded pipelines."""

from __future__ import annotations

import click
from rich.table import Table

from pipeledger.cli.output import console, handle_errors, status_text, when
from pipeledger.client import Client


@click.group("pipeline")
def pipeline_group() -> None:
    """Inspect recorded pipelines.

    \b
    Example:
      pipeledger pipeline list
    """


@pipeline_group.command("list")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Show at most this many pipelines.",
)
@handle_errors
def list_pipelines(limit: int) -> None:
    """List recorded pipelines with their run counts and latest run.

    \b
    Example:
      pipeledger pipeline list --limit 20
    """
    client = Client()
    pipelines = client.list_pipelines(limit=limit)
    if not pipelines:
        console().print("No pipeline recorded yet: run one, e.g. python examples/quickstart.py")
        return
    table = Table("pipeline", "runs", "latest run", "status", "started (UTC)")
    for p in pipelines:
        runs = client.store.list_runs(pipeline=p.name, limit=1)
        latest = runs[0] if runs else None
        table.add_row(
            p.name,
            str(client.store.count_runs(pipeline=p.name)),
            latest.name if latest else "",
            status_text(latest.status.value) if latest else "",
            when(latest.start_time) if latest else "",
        )
    console().print(table)
