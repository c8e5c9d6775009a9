"""The same pipelines on the sequential ``local`` orchestrator, ``local`` with
``max_parallelism=4`` (worker processes) and ``dask`` (a LocalCluster of two worker processes):
what is recorded must be the same — statuses, output content hashes, cache hits and lineage —
whatever runs the steps, on each metadata-store backend.

The pipelines: a diamond, a fan-out of 20, a failing branch, then the diamond and the fan-out
again (cached second runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from pipeledger import Client, RunFailedError
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager
from pipeledger.stack.registry import close_stacks
from tests import parallel_pipelines as P
from tests.servers import enabled_backends, scratch_database, server_config

distributed = pytest.importorskip("distributed")

ORCHESTRATORS = {
    "local": {},
    "local-4": {"max_parallelism": "4"},
    "dask": None,  # the module's cluster
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local


def run_all() -> list[str]:
    """Run the pipelines in order; the names of the recorded runs."""
    names = [P.diamond().name, P.fan_out(width=20).name]
    with pytest.raises(RunFailedError, match="failed in step 'explode'"):
        P.failing_branch()
    names.append("failing_branch-1")
    names += [P.diamond().name, P.fan_out(width=20).name]
    return names


def summary(run_name: str) -> dict[str, Any]:
    """What a run recorded, without ids, times or paths."""
    run = Client().get_run(run_name)
    steps: dict[str, Any] = {}
    for name, step in run.steps.items():
        cached_from = step.cached_from
        steps[name] = {
            "status": step.status.value,
            "cached_from": f"{cached_from.run.name}/{cached_from.name}" if cached_from else None,
            "outputs": {k: (a.content_hash, a.size, a.data_type) for k, a in step.outputs.items()},
            "inputs": {
                k: (a.producer.run.name, a.producer.name, a.content_hash) if a.producer else None
                for k, a in step.inputs.items()
            },
            "parameters": step.parameters,
            "cache_key": step._record.cache_key,
        }
    return {"status": run.status.value, "steps": steps}


@pytest.mark.parametrize("backend", [b for b in enabled_backends() if b in ("sqlite", "postgresql", "mysql")])
def test_every_orchestrator_records_the_same(
    backend: str, cluster: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    recorded: dict[str, dict[str, Any]] = {}
    databases = ExitStack()
    request.addfinalizer(databases.close)
    for label, config in ORCHESTRATORS.items():
        manager = StackManager()
        if backend == "sqlite":
            store_values: dict[str, Any] = {"path": str(tmp_path / f"{label}.db")}
        else:  # a new database for each orchestrator, so each starts from an empty store
            store_values = server_config(backend, databases.enter_context(scratch_database(backend)))
        manager.register_component(ComponentType.METADATA_STORE, f"m-{label}", backend, store_values)
        if backend != "sqlite":
            manager.migrate_metadata_store(f"m-{label}")
        manager.register_component(ComponentType.ARTIFACT_STORE, f"a-{label}", "local", {"path": str(tmp_path / label)})
        orchestrator = {"address": cluster.scheduler_address} if config is None else config
        manager.register_component(
            ComponentType.ORCHESTRATOR, f"o-{label}", "dask" if config is None else "local", orchestrator
        )
        manager.register_stack(label, f"o-{label}", f"a-{label}", f"m-{label}")
        manager.set_active_stack(label)
        close_stacks()
        names = run_all()
        recorded[label] = {name: summary(name) for name in names}
        close_stacks()
    assert recorded["local-4"] == recorded["local"]
    assert recorded["dask"] == recorded["local"]
    first = recorded["local"]
    assert first["diamond-2"]["steps"]["combine"]["cached_from"] == "diamond-1/combine"
    assert first["fan_out-2"]["steps"]["scale_19"]["status"] == "cached"
    assert first["failing_branch-1"]["steps"]["combine"]["status"] == "skipped"
    assert first["failing_branch-1"]["steps"]["source"]["status"] == "cached"
