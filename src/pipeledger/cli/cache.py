"""``pipeledger cache ...``: invalidate cached step results."""

from __future__ import annotations

import click

from pipeledger.cli.output import console, handle_errors
from pipeledger.client import Client
from pipeledger.models import utcnow


@click.group("cache")
def cache_group() -> None:
    """Manage the step cache.

    \b
    Example:
      pipeledger cache clear --pipeline training --step train
    """


@cache_group.command("clear")
@click.option("--pipeline", "-p", help="Only entries of this pipeline.")
@click.option("--step", "-s", help="Only entries of steps with this name.")
@handle_errors
def clear(pipeline: str | None, step: str | None) -> None:
    """Make cached step results unusable, so the next runs recompute them.

    Artifacts and run records are kept; only their reuse by later runs stops.

    \b
    Example:
      pipeledger cache clear --pipeline training --step train
    """
    client = Client()
    if pipeline is not None:
        client.get_pipeline(pipeline)  # a clear error for an unknown pipeline
    count = client.store.invalidate_cache(at=utcnow(), pipeline=pipeline, step=step)
    scope = " ".join(filter(None, [f"of pipeline {pipeline}" if pipeline else "", f"of step {step}" if step else ""]))
    console().print(f"Cleared {count} cache {'entry' if count == 1 else 'entries'}{' ' + scope if scope else ''}.")
