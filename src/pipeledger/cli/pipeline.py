"""``pipeledger pipeline ...``: the recorded pipelines."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.options import json_option, limit_option
from pipeledger.cli.output import compact_json, console, esc, status_text, when
from pipeledger.client import Client


@click.group("pipeline")
def pipeline_group() -> None:
    """Inspect recorded pipelines.

    \b
    Example:
      pipeledger pipeline list
    """


@pipeline_group.command("list")
@limit_option(100, "pipelines", newest_first=False)
@json_option()
def list_pipelines(limit: int, as_json: bool) -> None:
    """List recorded pipelines with their run counts and latest run.

    \b
    Example:
      pipeledger pipeline list --limit 20
    """
    client = Client()
    pipelines = client.list_pipelines(limit=limit)
    if as_json:
        shown = []
        for p in pipelines:
            runs = client.list_runs(pipeline=p.name, limit=1)
            count = client.store.count_runs(pipeline=p.name)
            shown.append(json_output.pipeline_summary(p.name, p.id, count, runs[0] if runs else None))
        json_output.print_json(shown)
        return
    if not pipelines:
        console().print("No pipeline recorded yet: run one, e.g. python examples/quickstart.py")
        return
    table = Table("pipeline", "runs", "latest run", "status", "started (UTC)")
    for p in pipelines:
        runs = client.list_runs(pipeline=p.name, limit=1)
        latest = runs[0] if runs else None
        table.add_row(
            esc(p.name),
            str(client.store.count_runs(pipeline=p.name)),
            esc(latest.name) if latest else "",
            status_text(latest.status.value) if latest else "",
            when(latest.start_time) if latest else "",
        )
    console().print(table)


@pipeline_group.command("metrics")
@click.argument("pipeline")
@click.argument("keys", nargs=-1)
@click.option("--last", type=click.IntRange(min=1), help="Only the latest N runs.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the metrics over runs as a PNG, one panel per metric, failed runs marked (needs matplotlib).",
)
def metrics(pipeline: str, keys: tuple[str, ...], last: int | None, plot: Path | None) -> None:
    """Show the metrics a pipeline's steps logged, run by run (oldest first).

    KEYS selects metrics (default: all); a key no step logged is an error listing the logged keys.

    \b
    Example:
      pipeledger pipeline metrics training accuracy loss --plot metrics.png
    """
    from pipeledger.comparison import metric_history, plot_metrics

    history = metric_history(Client().store, pipeline, keys, last)
    if not history.records:
        console().print(f"No metric logged by pipeline {esc(pipeline)}.", highlight=False)
        return
    table = Table("run", "status", "started (UTC)", *(esc(c) for c in history.columns))
    for record in history.records:
        status = record.get("status")
        table.add_row(
            esc(record["run"]),
            status_text(status.value) if status is not None else "",
            when(record["start_time"]),
            *(compact_json(record.get(c), 30) for c in history.columns),
        )
    console().print(table)
    if plot is not None:
        plot_metrics(history, plot)
        console().print(f"Wrote {esc(plot)}.", highlight=False)
