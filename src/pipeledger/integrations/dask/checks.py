"""What the ``dask`` orchestrator refuses before a run starts, each with one line naming the
component or step and what to use instead.

- No recipe for the stores (they were given as objects): workers could not open them.
- Workers on another machine and a metadata store that lives on this one
  (:attr:`~pipeledger.stack.flavor.MetadataStoreFlavor.machine_local`, e.g. ``sqlite``).
- An artifact store the workers do not see: a probe file written here must be readable there.
- Stores the workers cannot open (a secret reference they cannot resolve, a server they cannot
  reach), or a metadata store they open that is another one than this process's.
- A step (or its parameters) that cannot be sent to the workers, or loaded there.

The functions named ``_on_worker_*`` run on the workers (``Client.run``).
"""

from __future__ import annotations

import contextlib
import pickle
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeledger.exceptions import ConfigError, OrchestratorUnavailableError
from pipeledger.models import new_id
from pipeledger.orchestrators.base import RunPlan
from pipeledger.stack.recipe import StoreRecipes

if TYPE_CHECKING:
    from distributed import Client


def check_before_run(client: Client, plan: RunPlan, where: str) -> dict[str, bytes]:
    """Refuse what cannot work on the cluster of ``client`` (``where`` names it); returns each
    step invocation pickled (``cloudpickle``), checked to load on every worker.

    Raises:
        ConfigError: one of the problems in the module's docstring.
        OrchestratorUnavailableError: the cluster has no worker.
    """
    stores = plan.stores
    if stores is None:
        raise ConfigError(
            "the dask orchestrator's workers open the stack's stores themselves, but this run's stores "
            "were given as objects; run on a registered stack"
        )
    _check_resources(client, plan)
    payloads = _pickled_steps(plan)
    # first round trip: where the workers are
    hosts: dict[str, str] = client.run(socket.gethostname)
    if not hosts:
        raise OrchestratorUnavailableError(f"the Dask cluster at {where} has no worker; start one (`dask worker`)")
    here = socket.gethostname()
    elsewhere = sorted((worker, host) for worker, host in hosts.items() if host != here)
    if elsewhere:
        recipe = stores.metadata_store
        if getattr(recipe.flavor_class(), "machine_local", False):
            raise ConfigError(
                f"metadata store {recipe.name!r} (flavor {recipe.flavor}) is a file on this machine, which the "
                f"Dask worker {elsewhere[0][0]} on {elsewhere[0][1]} cannot record into; use a metadata store "
                "on a server the workers reach (postgresql, mysql, or a rest store)"
            )
    # second round trip: the workers read a probe file through the artifact store, open the
    # stores and load the steps
    store = plan.artifact_store
    token = new_id()
    probe_path = f"{store.root}/.pipeledger-probe-{token}"
    store.write_text(store.uri_of(probe_path), token)
    try:
        opened: dict[str, WorkerReport] = client.run(_on_worker_open, stores, payloads, probe_path)
    finally:
        with contextlib.suppress(OSError):
            store.fs.rm(probe_path)
    expected = plan.metadata_store.store_id()
    for worker, report in sorted(opened.items()):
        if report.probe != token:
            recipe = stores.artifact_store
            raise ConfigError(
                f"artifact store {recipe.name!r} (flavor {recipe.flavor}) at {store.root} is not visible from "
                f"Dask worker {worker} on {hosts.get(worker, '?')}: put it on a filesystem every worker mounts at "
                "the same path, or use an object store the workers reach (e.g. s3)"
            )
        if report.error is not None:
            raise ConfigError(f"Dask worker {worker} cannot open the stack's stores: {report.error}")
        if expected is not None and report.store_id != expected:
            raise ConfigError(
                f"Dask worker {worker} opens another metadata store than this process (store id "
                f"{report.store_id}, here {expected}): give the workers the same database (path or URL)"
            )
        if report.failed:
            name, error = sorted(report.failed.items())[0]
            entrypoint = next(i.step.entrypoint for i in plan.invocations if i.name == name)
            raise ConfigError(
                f"step {name!r} ({entrypoint}) cannot be loaded on Dask worker {worker}: {error}; install "
                "its module (and what it imports) on the workers, or put its directory on their PYTHONPATH"
            )
    return payloads


def _check_resources(client: Client, plan: RunPlan) -> None:
    """A step whose resources no worker has would wait forever: refuse it."""
    needed = [(i, i.step.resources) for i in plan.invocations if i.step.resources]
    if not needed:
        return
    offered: dict[str, dict[str, float]] = {
        worker: dict(info.get("resources") or {}) for worker, info in client.scheduler_info()["workers"].items()
    }
    for invocation, resources in needed:
        if not any(all(have.get(k, 0) >= v for k, v in resources.items()) for have in offered.values()):
            wanted = " ".join(f"{k}={v:g}" for k, v in resources.items())
            raise ConfigError(
                f"step {invocation.name!r} needs resources {wanted}, which no Dask worker has; start "
                f'workers with them (dask worker ... --resources "{wanted}")'
            )


def _pickled_steps(plan: RunPlan) -> dict[str, bytes]:
    import cloudpickle

    payloads: dict[str, bytes] = {}
    for invocation in plan.invocations:
        try:
            payloads[invocation.name] = cloudpickle.dumps(invocation)
        except Exception as exc:
            raise ConfigError(
                f"step {invocation.name!r} ({invocation.step.entrypoint}) cannot be sent to the Dask workers: "
                f"{type(exc).__name__}: {exc}; define it, and what it uses, at the top level of a module"
            ) from exc
    return payloads


@dataclass
class WorkerReport:
    """What a worker found: the probe file's text (None: not seen), its metadata store's id, why
    it could not open the stores, and the steps it could not load (with why)."""

    probe: str | None = None
    store_id: str | None = None
    error: str | None = None
    failed: dict[str, str] = field(default_factory=dict)


def _on_worker_open(stores: StoreRecipes, payloads: dict[str, bytes], probe_path: str) -> WorkerReport:
    """Read the probe file through the artifact store built here; if seen, open the stores
    (kept open for the run's tasks) and load the steps."""
    from pipeledger.orchestrators.worker import open_stores

    report = WorkerReport()
    try:
        artifact_store = stores.artifact_store.build()
        report.probe = bytes(artifact_store.fs.cat_file(probe_path)).decode("utf-8")
    except Exception:
        return report
    try:
        metadata_store, _ = open_stores(stores)
        report.store_id = metadata_store.store_id()
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        return report
    for name, payload in payloads.items():
        try:
            pickle.loads(payload)
        except Exception as exc:
            report.failed[name] = f"{type(exc).__name__}: {exc}"
    return report
