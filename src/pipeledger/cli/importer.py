"""``pipeledger import ...``: bringing run history recorded by other systems into a stack's store."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from pipeledger.cli.options import pipeline_option
from pipeledger.cli.output import console, esc
from pipeledger.exceptions import ConfigError
from pipeledger.importers import ImportSummary, MysqlSource, SqliteSource, import_mlmd
from pipeledger.importers.mlmd import KINDS
from pipeledger.stack.registry import get_stack
from pipeledger.text import plural


@click.group("import")
def import_group() -> None:
    """Import run history from other systems into the active stack's metadata store.

    \b
    Example:
      pipeledger import mlmd --sqlite metadata.db --dry-run
    """


@import_group.command("mlmd")
@click.option("--sqlite", "sqlite_file", type=click.Path(path_type=Path), help="An MLMD SQLite file (read-only).")
@click.option("--mysql-host", help="Host of an MLMD MySQL database (instead of --sqlite).")
@click.option("--mysql-port", type=int, default=3306, show_default=True, help="Port of the MySQL server.")
@click.option("--mysql-database", help="Name of the MLMD MySQL database.")
@click.option("--mysql-user", default="root", show_default=True, help="MySQL user.")
@click.option(
    "--mysql-password", help="A reference to the MySQL password: '${env:NAME}' or '${file:/path}' (never the password)."
)
@pipeline_option("Only this pipeline's runs (and the runs that produced their inputs).")
@click.option("--stack", help="Import into this stack's metadata store (default: the active stack).")
@click.option("--hash-files", is_flag=True, help="Hash the artifacts' files that can be read (content hash, size).")
@click.option("--dry-run", is_flag=True, help="Only report what would be imported.")
def import_mlmd_command(
    sqlite_file: Path | None,
    mysql_host: str | None,
    mysql_port: int,
    mysql_database: str | None,
    mysql_user: str,
    mysql_password: str | None,
    pipeline: str | None,
    stack: str | None,
    hash_files: bool,
    dry_run: bool,
) -> None:
    """Import pipelines, runs, steps, artifacts and lineage from an ML Metadata database
    written by TFX, Kubeflow Pipelines, ZenML <= 0.13 or pipeledger's kubeflow flavor.

    Importing again adds nothing (records already imported are skipped). Needs
    pip install 'pipeledger[kubeflow]'.

    \b
    Example:
      pipeledger import mlmd --sqlite ~/.config/zenml/local_stores/default/metadata.db --dry-run
      pipeledger import mlmd --mysql-host db --mysql-database mlmd --mysql-password '${env:MLMD_PASSWORD}'
    """
    if (sqlite_file is None) == (mysql_host is None):
        raise ConfigError("give either --sqlite FILE or --mysql-host (with --mysql-database)")
    source: SqliteSource | MysqlSource
    if sqlite_file is not None:
        source = SqliteSource(sqlite_file.expanduser())
    else:
        assert mysql_host is not None
        if not mysql_database:
            raise ConfigError("--mysql-host needs --mysql-database (the MLMD database's name)")
        source = MysqlSource(mysql_host, mysql_database, mysql_port, mysql_user, mysql_password)
    store = get_stack(stack).metadata_store
    summary = import_mlmd(source, store, pipeline=pipeline, dry_run=dry_run, hash_files=hash_files)
    _print_summary(summary)


def _print_summary(summary: ImportSummary) -> None:
    out = console()
    done = "would import" if summary.dry_run else "imported"
    out.print(f"MLMD import from {esc(summary.source)}", highlight=False, soft_wrap=True)
    table = Table("", done, "already present", "not mapped")
    for kind in KINDS:
        skipped = sum(summary.not_mapped.get(kind, {}).values())
        table.add_row(kind, str(summary.imported[kind]), str(summary.present[kind]), str(skipped))
    out.print(table)
    for kind, reasons in summary.not_mapped.items():
        for reason, count in sorted(reasons.items()):
            out.print(f"not mapped: {count} {kind}: {esc(reason)}", highlight=False, soft_wrap=True)
    for note in summary.notes:
        out.print(f"note: {esc(note)}", highlight=False, soft_wrap=True)
    if summary.already_imported:
        out.print("Already imported: nothing new to add.")
    elif summary.dry_run:
        out.print("Dry run: nothing was written.")
    elif not any(summary.imported.values()):
        out.print("Nothing to import.")
    else:
        runs = ", ".join(esc(n) for n in summary.run_names[:5]) + (" ..." if len(summary.run_names) > 5 else "")
        out.print(f"Imported {plural(summary.imported['runs'], 'run')}: {runs}" if runs else "Import complete.")
