"""The ``pipeledger`` command. Each noun lives in its own module; this one wires them.

Errors of every command are handled once, by the root group (:class:`PipeledgerGroup`).
"""

from __future__ import annotations

import click

from pipeledger import __version__
from pipeledger.cli import artifact, run_compare, run_lineage, ui_export  # noqa: F401  (more `run`, `artifact`, `ui` commands)
from pipeledger.cli.api_key import api_key_group
from pipeledger.cli.artifact_store import artifact_store_group
from pipeledger.cli.audit import audit_group
from pipeledger.cli.cache import cache_group
from pipeledger.cli.errors import DEBUG_VARIABLE, PipeledgerGroup
from pipeledger.cli.gc import gc
from pipeledger.cli.importer import import_group
from pipeledger.cli.lineage import lineage_command
from pipeledger.cli.login import login, logout
from pipeledger.cli.metadata_store import metadata_store_group
from pipeledger.cli.orchestrator import orchestrator_group
from pipeledger.cli.pipeline import pipeline_group
from pipeledger.cli.project import project_group
from pipeledger.cli.run import run_group
from pipeledger.cli.search import artifact_group, step_group
from pipeledger.cli.server import server_group
from pipeledger.cli.stack import stack_group
from pipeledger.cli.ui import ui_group
from pipeledger.cli.user import user_group


@click.group(cls=PipeledgerGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pipeledger")
@click.option("--debug", is_flag=True, help=f"Show full tracebacks on errors (or set {DEBUG_VARIABLE}=1).")
def cli(debug: bool) -> None:
    """pipeledger: ML pipelines with every run recorded in a metadata store.

    \b
    Example:
      pipeledger run list --pipeline training
    """


for group in (
    stack_group,
    metadata_store_group,
    artifact_store_group,
    orchestrator_group,
    pipeline_group,
    run_group,
    step_group,
    artifact_group,
    cache_group,
    lineage_command,
    gc,
    import_group,
    server_group,
    login,
    logout,
    user_group,
    api_key_group,
    project_group,
    ui_group,
    audit_group,
):
    cli.add_command(group)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pipeledger")
