"""``pipeledger pipeline ...``: the recorded pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from pipeledger.cli.output import compact_json, console, esc, handle_errors, status_text, when
from pipeledger.client import Client
from pipeledger.exceptions import PipeledgerError


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
    help="Also draw the metrics over runs as a PNG line plot (needs matplotlib).",
)
@handle_errors
def metrics(pipeline: str, keys: tuple[str, ...], last: int | None, plot: Path | None) -> None:
    """Show the metrics a pipeline's steps logged, run by run (oldest first).

    KEYS selects metrics (default: all).

    \b
    Example:
      pipeledger pipeline metrics training accuracy --plot accuracy.png
    """
    from pipeledger.comparison import metrics_table

    client = Client()
    client.get_pipeline(pipeline)  # a clear error for an unknown pipeline
    records = metrics_table(client.store.metric_history(pipeline, keys=list(keys) or None, limit=last))
    if not records:
        console().print(f"No metric{' ' + ', '.join(keys) if keys else ''} logged by pipeline {pipeline}.")
        return
    columns = [c for c in dict.fromkeys(k for r in records for k in r) if c not in ("run", "start_time")]
    table = Table("run", "started (UTC)", *(esc(c) for c in columns))
    for record in records:
        table.add_row(
            esc(record["run"]), when(record["start_time"]), *(compact_json(record.get(c), 30) for c in columns)
        )
    console().print(table)
    if plot is not None:
        plot_metrics(records, columns, plot, pipeline)
        console().print(f"Wrote {plot}.", highlight=False)


def plot_metrics(records: list[dict[str, Any]], columns: list[str], path: Path, title: str) -> None:
    """A PNG line plot of numeric metrics over runs.

    Raises:
        PipeledgerError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PipeledgerError(
            "--plot needs matplotlib: pip install 'pipeledger[plot]' (or pip install matplotlib)"
        ) from exc
    figure, axes = plt.subplots(figsize=(8, 4.5))
    runs = [r["run"] for r in records]
    drawn = 0
    for column in columns:
        values = [r.get(column) for r in records]
        points = [(i, v) for i, v in enumerate(values) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=column)
            drawn += 1
    if not drawn:
        plt.close(figure)
        raise PipeledgerError("none of the selected metrics is numeric: nothing to plot")
    axes.set_xticks(range(len(runs)), runs, rotation=45, ha="right", fontsize=8)
    axes.set_title(f"{title}: metrics over runs")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    plt.close(figure)
