"""``pipeledger artifact show``: look at one recorded artifact (the ``artifact`` group and its
``list`` are in :mod:`pipeledger.cli.search`)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.options import json_option
from pipeledger.cli.output import console, esc
from pipeledger.cli.search import artifact_group
from pipeledger.client import Client
from pipeledger.text import plural


@artifact_group.command("show")
@click.argument("reference")
@json_option()
def show(reference: str, as_json: bool) -> None:
    """Show an artifact's record and a bounded preview of its value, without loading it: the
    first KiB of text or JSON, an array's shape, dtype and statistics, a table's columns and
    first rows. REFERENCE is an artifact id or RUN/STEP/OUTPUT.

    \b
    Example:
      pipeledger artifact show training-3/train/model
    """
    view = Client().get_artifact(reference)
    summary = view.preview()
    if as_json:
        json_output.print_json(json_output.artifact_detail(view, summary))
        return
    out = console()
    out.print(f"[bold]artifact[/bold] {view.id}", highlight=False)
    producer = view.producer
    facts = [
        ("uri", view.uri),
        ("type", f"{view.type} ({view.data_type})"),
        ("materializer", f"{view.materializer} v{view.materializer_version}"),
        ("size", f"{view.size} B in {plural(len(summary['files']), 'file')}"),
        ("content hash", f"sha256 {view.content_hash}"),
        ("produced by", f"{producer.run.name}/{producer.name}" if producer else "(registered from outside)"),
    ]
    for label, value in facts:
        out.print(f"  [bold]{label}[/bold]  {esc(value)}", highlight=False, soft_wrap=True)
    out.print("[bold]preview[/bold]", highlight=False)
    preview = summary["preview"]
    if preview.get("kind") == "table" and preview["head"]:
        _print_table(out, preview)
        return
    for line in preview_lines(preview):
        out.print(f"  {esc(line)}", highlight=False, soft_wrap=True)


def _print_table(out: Console, preview: dict[str, Any]) -> None:
    """A table preview as a terminal table: its size, then the first rows of the columns that fit
    the terminal's width (a note names how many more there are; ``--json`` has them all)."""
    columns = list(preview["columns"])
    size = f"{plural(preview['rows'], 'row')} x {plural(len(columns), 'column')}"
    out.print(f"  {size}; first {plural(len(preview['head']), 'row')}:", highlight=False)
    cells = [[_cell(row.get(name)) for name in columns] for row in preview["head"]]
    room, shown = out.width - 2, 0
    for index, name in enumerate(columns):
        width = min(_CELL, max(len(name), *(len(row[index]) for row in cells))) + 3
        if room - width < 0 and shown:
            break
        room -= width
        shown += 1
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in columns[:shown]:
        header = esc(f"{name}\n{preview['columns'][name]}")
        table.add_column(header, overflow="ellipsis", no_wrap=True, max_width=_CELL)
    for row in cells:
        table.add_row(*(esc(value) for value in row[:shown]))
    out.print(Padding(table, (0, 0, 0, 2)))
    if shown < len(columns):
        out.print(f"  ... and {plural(len(columns) - shown, 'more column')} (--json shows them all)", highlight=False)


_CELL = 24
"""The widest a preview table's column is drawn (longer values end with an ellipsis)."""


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def preview_lines(preview: dict[str, Any]) -> list[str]:
    """A preview (``ArtifactView.preview()["preview"]``) as lines of text."""
    kind = preview.get("kind")
    more = " ..." if preview.get("truncated") else ""
    if kind == "json":
        return [*str(preview["text"]).splitlines(), *([more.strip()] if more else [])]
    if kind == "bytes":
        if preview.get("text") is not None:
            return [*str(preview["text"]).splitlines(), *([more.strip()] if more else [])]
        return [f"hex {preview['hex']}{more}"]
    if kind == "array":
        lines = [f"shape {tuple(preview['shape'])}, dtype {preview['dtype']}"]
        if "stats_of" in preview:
            lines.append(
                f"first {plural(preview['stats_of'], 'element')}: min {preview['min']}, max {preview['max']}, "
                f"mean {preview['mean']:.6g}; {preview['first']}"
            )
        return lines
    if kind == "table":
        columns = ", ".join(f"{name} {type_}" for name, type_ in preview["columns"].items())
        lines = [f"{plural(preview['rows'], 'row')}; columns: {columns}"]
        lines += [json.dumps(row, ensure_ascii=False, default=str) for row in preview["head"]]
        return lines
    if kind == "error":
        return [f"no preview: {preview['error']}"]
    return ["no preview for this materializer (its files are loaded only by read())"]
