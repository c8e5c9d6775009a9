"""``pipeledger run ...``: list runs, show one, read step logs."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.lineage import render, write_or_print
from pipeledger.cli.options import json_option, limit_option, pipeline_option
from pipeledger.cli.output import (
    compact_json,
    console,
    duration,
    error_console,
    esc,
    status_text,
    when,
)
from pipeledger.cli.search import csv_option, filter_options, print_csv, print_next_page
from pipeledger.client import Client, RunView
from pipeledger.client.client import list_filter
from pipeledger.exceptions import NotFoundError, PipeledgerError
from pipeledger.maintenance import mark_crashed_runs
from pipeledger.models import DEFAULT_PROJECT, EntityKind, Status
from pipeledger.search import parse_filter

STATUSES = [s.value for s in Status]


@click.group("run")
def run_group() -> None:
    """Inspect recorded pipeline runs.

    \b
    Example:
      pipeledger run show training-3
    """


def _resolve(client: Client, run: str | None) -> RunView:
    if run is not None:
        return client.get_run(run)
    latest = client.list_runs(limit=1)
    if not latest:
        raise NotFoundError("no run recorded yet: run a pipeline first")
    return latest[0]


@run_group.command("list")
@pipeline_option()
@click.option("--status", "-s", type=click.Choice(STATUSES), help="Only runs with this status.")
@filter_options("runs", "metrics.accuracy desc")
@limit_option(20, "runs")
@json_option()
@csv_option()
def list_runs(
    pipeline: str | None,
    status: str | None,
    filter_text: str | None,
    order_by: tuple[str, ...],
    page_token: str | None,
    limit: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List runs, newest first, or those a filter finds (docs/searching.md).

    \b
    Example:
      pipeledger run list --pipeline training --status failed --limit 5
      pipeledger run list --filter "params.lr >= 0.01 and tag = 'prod'" --order-by "metrics.accuracy desc"
    """
    client = Client()
    if pipeline is not None:
        client.get_pipeline(pipeline)  # a clear error for an unknown pipeline
    mark_crashed_runs(client.store)
    conditions = [c for c in (list_filter(pipeline, status, None), filter_text) if c]
    if filter_text is not None and len(conditions) > 1:
        parse_filter(filter_text, "run")  # errors point into the filter as the user wrote it
    combined = conditions[0] if len(conditions) == 1 else " and ".join(f"({c})" for c in conditions) or None
    if filter_text is None and not order_by and page_token is None:
        runs = client.list_runs(pipeline=pipeline, status=status, limit=limit)
        token = None
    else:
        page = client.search_runs(combined, order_by=list(order_by) or None, limit=limit, page_token=page_token)
        runs, token = page.items, page.next_page_token
    if as_json:
        json_output.print_json([json_output.run_summary(run) for run in runs])
        return
    if as_csv:
        print_csv([{**json_output.run_summary(run), "tags": run.tags} for run in runs])
        return
    if not runs:
        console().print("No run matches.")
        return
    # The project column shows once a run of another project than `default` is listed.
    projects = any(run.project != DEFAULT_PROJECT for run in runs)
    table = Table("run", *(["project"] if projects else []), "pipeline", "status", "started (UTC)", "duration", "tags")
    for run in runs:
        table.add_row(
            esc(run.name),
            *([esc(run.project)] if projects else []),
            esc(run.pipeline_name),
            status_text(run.status.value),
            when(run.start_time),
            duration(run.duration),
            esc(", ".join(run.tags)),
        )
    console().print(table)
    print_next_page(token)


@run_group.command("tag", context_settings={"ignore_unknown_options": True})
@click.argument("run")
@click.argument("changes", nargs=-1, required=True)
@json_option()
def tag_run(run: str, changes: tuple[str, ...], as_json: bool) -> None:
    """Add (+TAG) and remove (-TAG) tags of a run, in one atomic change.

    RUN is a run name or id. A tag starting with "h" is removed after ``--``
    (``-- -hold``), since ``-h`` asks for help.

    \b
    Example:
      pipeledger run tag training-3 +prod -candidate
    """
    add, remove = parse_tag_changes(changes)
    client = Client()
    view = client.get_run(run)
    client.store.change_tags(EntityKind.RUN, view.id, add=add, remove=remove)
    tags = client.store.get_tags(EntityKind.RUN, [view.id]).get(view.id, [])
    if as_json:
        json_output.print_json({"run": view.name, "tags": tags})
        return
    console().print(f"{esc(view.name)}: {esc(', '.join(tags)) if tags else 'no tags'}")


def parse_tag_changes(changes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``("+prod", "-candidate")`` as the tags to add and to remove.

    Raises:
        click.UsageError: a change that starts with neither + nor -.
    """
    add: list[str] = []
    remove: list[str] = []
    for change in changes:
        if change[:1] == "+" and len(change) > 1:
            add.append(change[1:])
        elif change[:1] == "-" and len(change) > 1:
            remove.append(change[1:])
        else:
            raise click.UsageError(f"{change!r}: write +TAG to add a tag or -TAG to remove one")
    return add, remove


@run_group.command("show")
@click.argument("run", required=False)
@click.option("--cache", "show_cache", is_flag=True, help="Explain why each step hit or missed the cache.")
@click.option(
    "--graph",
    "graph_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the run's DAG with statuses into this file (.svg/.png need Graphviz; .html, .dot, .json).",
)
@json_option()
def show_run(run: str | None, show_cache: bool, graph_file: Path | None, as_json: bool) -> None:
    """Show a run: its steps, statuses, durations, parameters, outputs and metadata.

    RUN is a run name or id; without it, the latest run is shown.

    \b
    Example:
      pipeledger run show training-3 --cache
    """
    client = Client()
    view = _resolve(client, run)
    if as_json:  # every step's cache explanation is in it: --cache adds nothing
        _check_graph_file(graph_file)
        json_output.print_json(json_output.run_detail(view))
        if graph_file is not None:
            _write_graph(view, graph_file, error_console())
        return
    out = console()
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("run", esc(view.name))
    summary.add_row("pipeline", esc(view.pipeline_name))
    summary.add_row("project", esc(view.project))
    summary.add_row("status", status_text(view.status.value))
    summary.add_row("started (UTC)", when(view.start_time))
    summary.add_row("duration", duration(view.duration))
    summary.add_row("parameters", compact_json(view.parameters, 120))
    git = view.git_sha[:12] + (" (dirty)" if view.git_dirty else "") if view.git_sha else "-"
    summary.add_row("git", git)
    summary.add_row("python", str(view.environment.get("python", "")))
    store = view.stack.get("metadata_store", {})
    summary.add_row(
        "stack",
        f"{view.stack.get('name', '')} (metadata store {store.get('name', '?')}, flavor {store.get('flavor', '?')})",
    )
    out.print(summary)
    steps = Table(
        "step", "status", "duration", "parameters", "outputs", "metadata", title="steps", title_justify="left"
    )
    for step in view.steps.values():
        steps.add_row(
            esc(step.name),
            status_text(step.status.value),
            duration(step.duration),
            compact_json(step.parameters, 50) if step.parameters else "",
            esc(", ".join(step.outputs)),
            compact_json(step.metadata, 60) if step.metadata else "",
        )
    recorded = set(view.steps)
    for name in view.config.get("steps", {}):
        if name not in recorded:
            steps.add_row(esc(name), "[dim]not run[/dim]", "", "", "", "")
    out.print(steps)
    if show_cache:
        out.print("[bold]cache[/bold]")
        for step in view.steps.values():
            out.print(
                f"  [bold]{esc(step.name)}[/bold]: {esc(step.cache_explanation)}", highlight=False, soft_wrap=True
            )
    artifacts = [(s.name, n, a) for s in view.steps.values() for n, a in s.outputs.items()]
    if artifacts:
        # One line each, never wrapped or cut (a table would fold long URIs): ids are copied into
        # `pipeledger lineage ID` (or use RUN/STEP/OUTPUT there).
        out.print("[bold]artifacts[/bold] [dim](step.output, artifact id, data type, size, uri)[/dim]")
        for step_name, output_name, artifact in artifacts:
            out.print(
                f"  [bold]{esc(step_name)}.{esc(output_name)}[/bold]  [cyan]{artifact.id}[/cyan]  "
                f"{esc(artifact.data_type)}  {artifact.size} B  {esc(artifact.uri)}",
                highlight=False,
                soft_wrap=True,
            )
    if view.error:
        out.print(f"[bold red]error:[/bold red] {esc(view.error)}", highlight=False)
    if graph_file is not None:
        _check_graph_file(graph_file)
        _write_graph(view, graph_file, out)


GRAPH_FORMATS = ("svg", "png", "html", "dot", "json")


def _check_graph_file(graph_file: Path | None) -> None:
    if graph_file is not None and graph_file.suffix.lstrip(".").lower() not in GRAPH_FORMATS:
        raise PipeledgerError(f"--graph {graph_file}: use a .svg, .png, .html, .dot or .json file name")


def _write_graph(view: RunView, graph_file: Path, notices: Console) -> None:
    fmt = graph_file.suffix.lstrip(".").lower()
    write_or_print(render(view.graph(), fmt), graph_file, fmt, notices)


@run_group.command("logs")
@click.argument("run")
@click.argument("step", required=False)
def run_logs(run: str, step: str | None) -> None:
    """Print what the steps of a run printed and logged.

    Without STEP, every step's output is printed under a header. A step that printed
    nothing is said to have printed nothing.

    \b
    Example:
      pipeledger run logs training-3 train
    """
    view = Client().get_run(run)
    steps = [view.steps[step]] if step else list(view.steps.values())
    for s in steps:
        if not step:
            click.secho(f"=== {s.name} ({s.status.value}) ===", bold=True)
        if s.is_cached:
            origin = s.cached_from
            where = f" of run {origin.run.name}" if origin else ""
            click.echo(f"(cached: the step did not run; its outputs come from step {s.name}{where})")
            continue
        logs = s.logs
        if not logs:
            click.echo(f"(step {s.name} printed nothing{' yet' if s.status is Status.RUNNING else ''})")
            continue
        click.echo(logs, nl=not logs.endswith("\n"))  # the next header starts on its own line
