"""``pipeledger cache ...``: list and invalidate cached step results."""

from __future__ import annotations

import click
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.options import json_option, limit_option, pipeline_option, yes_option
from pipeledger.cli.output import console, esc, when
from pipeledger.client import Client
from pipeledger.models import utcnow
from pipeledger.text import plural

_PIPELINE = pipeline_option("Only entries of this pipeline.")
_STEP = click.option("--step", "-s", help="Only entries of steps with this name.")
KEY_PREFIX = 12  # hex digits of a cache key shown


@click.group("cache")
def cache_group() -> None:
    """List and clear the step cache.

    \b
    Example:
      pipeledger cache list --pipeline training
      pipeledger cache clear --pipeline training --step train
    """


def _check_pipeline(client: Client, pipeline: str | None) -> None:
    if pipeline is not None:
        client.get_pipeline(pipeline)  # a clear error for an unknown pipeline


@cache_group.command("list")
@_PIPELINE
@_STEP
@click.option(
    "--state",
    type=click.Choice(["all", "valid", "invalidated"]),
    default="all",
    show_default=True,
    help="Only entries later runs may reuse (valid), or only cleared ones (invalidated).",
)
@limit_option(50, "entries")
@json_option()
def list_entries(pipeline: str | None, step: str | None, state: str, limit: int, as_json: bool) -> None:
    """List cache entries, newest first: the computed step runs later runs may reuse.

    Each entry shows its step, pipeline, run, the start of its cache key, when it was
    created (the step finished) and when it was invalidated, if it was.

    \b
    Example:
      pipeledger cache list --pipeline training --step train --state valid
    """
    client = Client()
    _check_pipeline(client, pipeline)
    invalidated = None if state == "all" else state == "invalidated"
    entries = client.store.list_cache_entries(pipeline=pipeline, step=step, invalidated=invalidated, limit=limit)
    if as_json:
        json_output.print_json([json_output.cache_entry(entry) for entry in entries])
        return
    if not entries:
        console().print("No cache entry matches.")
        return
    table = Table("step", "pipeline", "run", "key", "created (UTC)", "invalidated (UTC)")
    for entry in entries:
        table.add_row(
            esc(entry.step_name),
            esc(entry.pipeline_name),
            esc(entry.run_name),
            entry.cache_key[:KEY_PREFIX],
            when(entry.created),
            when(entry.invalidated_at) if entry.invalidated_at else "[green]valid[/green]",
        )
    console().print(table)


@cache_group.command("clear")
@_PIPELINE
@_STEP
@yes_option("Do not ask for confirmation when clearing every entry.")
def clear(pipeline: str | None, step: str | None, yes: bool) -> None:
    """Make cached step results unusable, so the next runs recompute them.

    Artifacts and run records are kept; only their reuse by later runs stops.
    Without --pipeline or --step every entry is cleared, after a confirmation
    (or with --yes).

    \b
    Example:
      pipeledger cache clear --pipeline training --step train
      pipeledger cache clear --yes
    """
    client = Client()
    _check_pipeline(client, pipeline)
    if pipeline is None and step is None and not yes:
        valid = len(client.store.list_cache_entries(invalidated=False))
        if not valid:
            console().print("No cache entry to clear.")
            return
        click.confirm(f"Clear all {plural(valid, 'cache entry')}, of every pipeline?", abort=True)
    count = client.store.invalidate_cache(at=utcnow(), pipeline=pipeline, step=step)
    scope = " ".join(filter(None, [f"of pipeline {pipeline}" if pipeline else "", f"of step {step}" if step else ""]))
    console().print(f"Cleared {plural(count, 'cache entry')}{' ' + esc(scope) if scope else ''}.", highlight=False)
