"""``pipeledger run export-openlineage RUN``: the run's step runs as OpenLineage events."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from pipeledger.cli.output import console
from pipeledger.cli.run import run_group
from pipeledger.client import Client
from pipeledger.lineage.openlineage import post_events, run_events
from pipeledger.redact import redact_url
from pipeledger.text import plural


@run_group.command("export-openlineage")
@click.argument("run")
@click.option("--url", help="POST the events to this OpenLineage endpoint (e.g. Marquez: http://localhost:5000).")
@click.option("--namespace", default="pipeledger", show_default=True, help="OpenLineage job namespace.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the events here.")
def export_openlineage(run: str, url: str | None, namespace: str, output: Path | None) -> None:
    """Export a run's steps as OpenLineage RunEvents (START and COMPLETE/FAIL per step run).

    Prints the events as JSON (or writes them with -o); with --url, posts them.
    An API key for the endpoint is read from $OPENLINEAGE_API_KEY.

    \b
    Example:
      pipeledger run export-openlineage training-3 --url http://localhost:5000
    """
    events = run_events(Client().get_run(run), namespace)
    if url:
        count = post_events(events, url, api_key=os.environ.get("OPENLINEAGE_API_KEY"))
        console().print(f"Posted {plural(count, 'OpenLineage event')} to {redact_url(url)}.", highlight=False)
    text = json.dumps(events, indent=2) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
        console().print(f"Wrote {plural(len(events), 'event')} to {output}.", highlight=False)
    elif not url:
        click.echo(text, nl=False)
