"""Search options shared by ``run list``, ``step list`` and ``artifact list``, and the last two.

The filter language is the library's (``docs/searching.md``); a bad filter is a ``QueryError``
that the root group prints as the problem, the filter and a caret under the column.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.options import json_option, limit_option
from pipeledger.cli.output import console, duration, error_console, esc, status_text, when
from pipeledger.client import Client

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(what: str, example_order: str) -> Callable[[F], F]:
    """``--filter``/``-f``, ``--order-by`` (repeatable) and ``--page-token``."""

    def decorate(function: F) -> F:
        function = click.option(
            "--page-token", help="Show the page after the one that printed this token (same filter and order)."
        )(function)
        function = click.option(
            "--order-by",
            "-o",
            "order_by",
            multiple=True,
            help=f"Sort by a field, 'asc' or 'desc' (repeatable), e.g. '{example_order}'. Default: newest first.",
        )(function)
        return click.option(
            "--filter", "-f", "filter_text", help=f"Only {what} this filter finds (language: docs/searching.md)."
        )(function)

    return decorate


def csv_option() -> Callable[[F], F]:
    """``--csv``: print the rows as CSV on stdout."""
    return click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")


def print_csv(rows: Sequence[dict[str, Any]]) -> None:
    """``rows`` as CSV with a header (lists joined with ``;``) on stdout."""
    if not rows:
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()})


def print_next_page(token: str | None) -> None:
    """Say how to see the next page, on stderr (stdout stays the table)."""
    if token is not None:
        error_console().print(f"More: add --page-token {token}", highlight=False, soft_wrap=True)


def step_summary(step: Any) -> dict[str, Any]:
    """A step run as ``step list`` shows it."""
    return {
        "id": step.id,
        "step": step.name,
        "run": step.run.name,
        "status": step.status.value,
        "start_time": json_output.iso(step.start_time),
        "duration_seconds": json_output.seconds(step.duration),
        "cache_key": step.cache_key,
        "tags": step.tags,
    }


@click.group("step")
def step_group() -> None:
    """Find step runs across runs.

    \b
    Example:
      pipeledger step list --filter "step = 'train' and duration > 10m"
    """


@step_group.command("list")
@filter_options("step runs", "duration desc")
@limit_option(20, "step runs", newest_first=False)
@json_option()
@csv_option()
def list_steps(
    filter_text: str | None, order_by: tuple[str, ...], page_token: str | None, limit: int, as_json: bool, as_csv: bool
) -> None:
    """List step runs, newest first, or those a filter finds.

    \b
    Example:
      pipeledger step list --filter "cached = false and metrics.loss < 0.1" --order-by "metrics.loss"
    """
    page = Client().search_steps(filter_text, order_by=list(order_by) or None, limit=limit, page_token=page_token)
    rows = [step_summary(step) for step in page]
    if as_json:
        json_output.print_json(rows)
        return
    if as_csv:
        print_csv(rows)
        return
    if not rows:
        console().print("No step run matches.")
        return
    table = Table("step", "run", "status", "started (UTC)", "duration", "id")
    for step in page:
        table.add_row(
            esc(step.name),
            esc(step.run.name),
            status_text(step.status.value),
            when(step.start_time),
            duration(step.duration),
            step.id,
        )
    console().print(table)
    print_next_page(page.next_page_token)


@click.group("artifact")
def artifact_group() -> None:
    """Find artifacts across runs, and show one with a preview of its value.

    \b
    Example:
      pipeledger artifact list --filter "type = 'Model' and size > 1000000"
      pipeledger artifact show training-3/train/model
    """


@artifact_group.command("list")
@filter_options("artifacts", "size desc")
@limit_option(20, "artifacts", newest_first=False)
@json_option()
@csv_option()
def list_artifacts(
    filter_text: str | None, order_by: tuple[str, ...], page_token: str | None, limit: int, as_json: bool, as_csv: bool
) -> None:
    """List artifacts, newest first, or those a filter finds.

    \b
    Example:
      pipeledger artifact list --filter "downstream_of('0192...')" --json
    """
    page = Client().search_artifacts(filter_text, order_by=list(order_by) or None, limit=limit, page_token=page_token)
    rows = [{**json_output.artifact(a), "producer_step_run_id": a.record.producer_step_run_id} for a in page]
    if as_json:
        json_output.print_json(rows)
        return
    if as_csv:
        print_csv(rows)
        return
    if not rows:
        console().print("No artifact matches.")
        return
    table = Table("id", "type", "data type", "size", "created (UTC)")
    for artifact in page:
        table.add_row(
            artifact.id, esc(artifact.type), esc(artifact.data_type), str(artifact.size), when(artifact.created_at)
        )
    console().print(table)
    print_next_page(page.next_page_token)
