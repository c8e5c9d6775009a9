"""``pipeledger run diff A B`` and ``pipeledger run rerun RUN``."""

from __future__ import annotations

import click
from rich.table import Table

from pipeledger.cli.output import compact_json, console, esc
from pipeledger.cli.run import run_group
from pipeledger.client import Client
from pipeledger.reproduce import differences, load_pipeline, rerun


@run_group.command("diff")
@click.argument("run_a")
@click.argument("run_b")
def diff(run_a: str, run_b: str) -> None:
    """Show how two runs differ: parameters, code, environment, metrics and output contents.

    \b
    Example:
      pipeledger run diff training-3 training-4
    """
    client = Client()
    a, b = client.get_run(run_a), client.get_run(run_b)
    found = a.diff(b)
    if not found:
        console().print(f"No difference between {esc(a.name)} and {esc(b.name)}.")
        return
    table = Table("section", "what", esc(a.name), esc(b.name))
    for d in found:
        table.add_row(d.section, esc(d.item), compact_json(d.a, 50), compact_json(d.b, 50))
    console().print(table)


@run_group.command("rerun")
@click.argument("run")
@click.option("--dry-run", is_flag=True, help="Only report the differences; do not run.")
def rerun_command(run: str, dry_run: bool) -> None:
    """Run a recorded run's pipeline again with its recorded parameters and options.

    Before running, each difference between the recorded and the current code
    (git commit, uncommitted changes, step and helper sources) and environment
    (Python, platform, package versions) is reported.

    \b
    Example:
      pipeledger run rerun training-3 --dry-run
    """
    view = Client().get_run(run)
    out = console()
    if dry_run:
        changes = differences(view, load_pipeline(view))
        if not changes:
            out.print(f"Code and environment are as recorded for {esc(view.name)}.")
        for change in changes:
            out.print(f"- {esc(change)}", highlight=False)
        return
    new = rerun(view, report=lambda line: out.print(esc(line), highlight=False))
    out.print(f"Recorded {esc(new.name)}: {new.status.value}.", highlight=False)
