"""The import structure: no cycle between the read side and execution (docs/architecture.md, "Layers").

``make lint`` checks the layer contracts with import-linter (pyproject.toml, ``[tool.importlinter]``);
this test checks the property they exist for, with the same graph library (grimp): no chain of
imports runs both ways between any two of the packages below, counting chains through any module.
"""

from __future__ import annotations

import itertools

import grimp

PACKAGES = [
    "pipeledger.client",
    "pipeledger.lineage",
    "pipeledger.comparison",
    "pipeledger.pipelines",
    "pipeledger.reproduce",
]
# The import contracts' two exceptions, each justified there: the deprecated run.reproduce(), and
# the package root read for __version__ (Python imports the root before any submodule anyway).
ALLOWED = [
    ("pipeledger.client.views", "pipeledger.reproduce"),
    ("pipeledger.lineage.openlineage", "pipeledger"),
    ("pipeledger.server.app", "pipeledger"),
]


def runtime_graph() -> grimp.ImportGraph:
    """pipeledger's imports that run (``if TYPE_CHECKING:`` imports left out, as in the contracts)."""
    graph = grimp.build_graph("pipeledger", exclude_type_checking_imports=True, cache_dir=None)
    for importer, imported in ALLOWED:
        assert graph.direct_import_exists(importer=importer, imported=imported), (importer, imported)
        graph.remove_import(importer=importer, imported=imported)
    return graph


def test_no_import_cycle_between_the_read_side_and_execution() -> None:
    graph = runtime_graph()
    cycles = [
        (a, b)
        for a, b in itertools.combinations(PACKAGES, 2)
        if graph.chain_exists(importer=a, imported=b, as_packages=True)
        and graph.chain_exists(importer=b, imported=a, as_packages=True)
    ]
    assert cycles == []


def test_execution_reads_through_the_client_and_not_the_reverse() -> None:
    graph = runtime_graph()
    assert graph.chain_exists(importer="pipeledger.reproduce", imported="pipeledger.pipelines", as_packages=True)
    for execution in ("pipeledger.pipelines", "pipeledger.orchestrators", "pipeledger.reproduce"):
        for read_side in ("pipeledger.client", "pipeledger.lineage", "pipeledger.comparison", "pipeledger.server"):
            found = graph.chain_exists(importer=read_side, imported=execution, as_packages=True)
            assert not found, (read_side, execution)


def test_the_allowed_exceptions_are_the_only_cycle() -> None:
    """Without removing the deprecated run.reproduce() import, client and reproduce form a cycle:
    the exception is real, and the check above would see it."""
    graph = grimp.build_graph("pipeledger", exclude_type_checking_imports=True, cache_dir=None)
    graph.remove_import(importer="pipeledger.lineage.openlineage", imported="pipeledger")
    graph.remove_import(importer="pipeledger.server.app", imported="pipeledger")
    assert graph.chain_exists(importer="pipeledger.client", imported="pipeledger.reproduce", as_packages=True)
    assert graph.chain_exists(importer="pipeledger.reproduce", imported="pipeledger.client", as_packages=True)
