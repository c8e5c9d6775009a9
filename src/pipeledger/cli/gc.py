"""``pipeledger gc`` and ``pipeledger run delete``: deleting runs, retention, orphaned files."""

from __future__ import annotations

import re
from datetime import timedelta

import click
from rich.table import Table

from pipeledger.cli.options import pipeline_option, yes_option
from pipeledger.cli.output import console, error_console, esc, status_text, when
from pipeledger.cli.run import run_group
from pipeledger.client import Client
from pipeledger.exceptions import NotFoundError, PipeledgerError
from pipeledger.maintenance import (
    delete_run,
    delete_runs,
    deletion_preview,
    find_orphans,
    mark_crashed_runs,
    remove_orphans,
    runs_to_retire,
)
from pipeledger.models import RunDeletion
from pipeledger.stack.registry import get_stack
from pipeledger.text import plural

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``45m``, ``2w``, ``90s`` as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise PipeledgerError(f"invalid age {text!r}: use a number and a unit, e.g. 30d, 12h, 45m, 2w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _report_deletion(deletion: RunDeletion) -> None:
    out = console()
    out.print(
        f"Deleted run [bold]{esc(deletion.run.name)}[/bold] and {plural(len(deletion.deleted_artifacts), 'artifact')}.",
        highlight=False,
    )
    for artifact in deletion.kept_artifacts:
        out.print(
            f"  kept {artifact.id} ({esc(artifact.uri)}): still used by another run", highlight=False, soft_wrap=True
        )
    _report_kept_files(deletion)


def _report_kept_files(deletion: RunDeletion) -> None:
    for uri in deletion.kept_files:
        console().print(
            f"  kept the files at {esc(uri)}: not written by this metadata store into this stack's artifact store "
            "(only the record was deleted)",
            highlight=False,
            soft_wrap=True,
        )


@run_group.command("delete")
@click.argument("run")
@yes_option()
def delete(run: str, yes: bool) -> None:
    """Delete a run: its records and the artifacts no other run uses (records and files).

    Artifacts another run still uses (as inputs, or reused by its cached steps) are
    kept, and listed. Files are removed only from the stack's artifact store, where
    this metadata store wrote them: imported and external data keep their files.

    \b
    Example:
      pipeledger run delete training-3 --yes
    """
    stack = get_stack()
    client = Client(stack=stack)
    view = client.get_run(run)
    if view.status.value == "running":
        raise PipeledgerError(f"run {view.name!r} is still running; wait for it to finish (or to be marked crashed)")
    if not yes:
        click.confirm(f"Delete run {view.name} of pipeline {view.pipeline_name}?", abort=True)
    try:
        deletion = delete_run(client.store, view.id, stack.artifact_store)
    except NotFoundError:  # another process (a `gc`, a `run delete`) deleted it since it was looked up
        console().print(f"Run [bold]{esc(view.name)}[/bold] was already deleted by another process.", highlight=False)
        return
    _report_deletion(deletion)


@click.command("gc")
@click.option("--older-than", help="Delete finished runs that started longer ago than this (e.g. 30d, 12h).")
@click.option("--keep-last", type=click.IntRange(min=0), help="Keep the latest N runs of each pipeline.")
@pipeline_option()
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@yes_option()
def gc(older_than: str | None, keep_last: int | None, pipeline: str | None, dry_run: bool, yes: bool) -> None:
    """Apply retention and remove orphaned artifact files.

    Marks runs whose process died (no heartbeat) as crashed; deletes finished runs
    selected by --older-than and/or --keep-last (each like `run delete`: artifacts
    other runs use are kept); removes this metadata store's files in the artifact
    store that no record points to (artifact directories, stale temporary files and
    logs, untouched for an hour and not being written). Files of other metadata
    stores sharing the artifact store are never touched. Without --older-than or
    --keep-last, no run is deleted. --dry-run lists every path it would remove.
    Safe beside running pipelines and other `gc`s: a run that another process
    deleted meanwhile is skipped.

    \b
    Example:
      pipeledger gc --older-than 30d --keep-last 5 --dry-run
    """
    # Every argument is checked before anything changes (marking crashed runs included).
    age = parse_age(older_than) if older_than is not None else None
    stack = get_stack()
    store = stack.metadata_store
    if pipeline is not None:
        Client(stack=stack).get_pipeline(pipeline)
    if not dry_run:
        crashed = mark_crashed_runs(store)
        if crashed:
            console().print(f"Marked {plural(len(crashed), 'run')} without heartbeat as crashed.")
    runs = []
    if older_than is not None or keep_last is not None:
        runs = runs_to_retire(store, older_than=age, keep_last=keep_last, pipeline=pipeline)
    orphans = find_orphans(store, stack.artifact_store)
    out = console()
    if runs:
        table = Table("run", "pipeline", "status", "started (UTC)", title="runs to delete", title_justify="left")
        for run in runs:
            table.add_row(esc(run.name), esc(run.pipeline_name), status_text(run.status.value), when(run.start_time))
        out.print(table)
    files: list[str] = []  # of the runs to delete, listed by a dry run
    if runs and dry_run:
        doomed = {run.id for run in runs}  # deleted together: what only they use goes too
        previews = [deletion_preview(store, run.id, stack.artifact_store, also_deleted=doomed) for run in runs]
        files = [path for preview in previews for path in preview.removed_files]
        for path in files:
            out.print(f"file of a deleted run: {esc(path)}", highlight=False, soft_wrap=True)
        for preview in previews:
            _report_kept_files(preview)
    for path in orphans.paths:
        out.print(f"orphaned: {esc(path)}", highlight=False, soft_wrap=True)  # paths whole, never wrapped
    if orphans.refused:
        error_console().print(f"warning: {esc(orphans.refused)}", highlight=False, soft_wrap=True)
    if not runs and not orphans.paths:
        out.print("Nothing to collect.")
        return
    if dry_run:
        out.print(
            f"Dry run: {plural(len(runs), 'run')} with {plural(len(files), 'path')} of their files, and "
            f"{plural(len(orphans.paths), 'orphaned path')} would be deleted."
        )
        return
    if not yes:
        click.confirm(
            f"Delete {plural(len(runs), 'run')} and {plural(len(orphans.paths), 'orphaned path')}?", abort=True
        )
    for run, deletion in delete_runs(store, runs, stack.artifact_store):
        if deletion is None:  # a concurrent `gc` or `run delete` took it: nothing left to do
            out.print(f"Skipped run [bold]{esc(run.name)}[/bold]: already deleted by another process.", highlight=False)
        else:
            _report_deletion(deletion)
    removed = remove_orphans(stack.artifact_store, orphans, store.store_id() if not orphans.refused else None)
    out.print(f"Removed {plural(removed, 'orphaned path')}.")
