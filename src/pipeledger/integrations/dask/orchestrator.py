"""The ``dask`` orchestrator flavor: one Dask task per step, on a cluster it starts or joins.

With ``address`` unset, each run starts a ``LocalCluster`` of ``n_workers`` worker processes
(``threads_per_worker`` threads each) on the loopback interface, and stops it after the run;
with ``address`` it joins the running scheduler there. Each step is a task whose upstream
steps' tasks are its dependencies, so Dask keeps the order; the task runs the step on a
worker through :func:`~pipeledger.orchestrators.worker.run_step_task` (the step runner every
orchestrator uses), recording straight into the stack's stores, which each worker opens from
their recipes. A step's ``resources`` become the task's Dask resources.

Before anything runs, :func:`~pipeledger.integrations.dask.checks.check_before_run` refuses
what cannot work. Faults: a worker lost while running a step (killed, out of memory) makes Dask
run the task again on another worker, up to ``retries`` times (the retry continues the same
step run: :meth:`StepRunner.retry_step`), then the step fails naming the lost attempts; Ctrl-C
cancels the queued tasks and records the running steps ``failed``; a scheduler that stays
unreachable for ``connect_timeout`` seconds fails the run with
:class:`~pipeledger.exceptions.OrchestratorUnavailableError`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import Field, model_validator

from pipeledger.caching.sources import RECORDED_NAME_ATTRIBUTE, module_name
from pipeledger.exceptions import ConfigError, OrchestratorUnavailableError
from pipeledger.integrations.dask.checks import check_before_run
from pipeledger.models import Status
from pipeledger.orchestrators.base import Orchestrator, RunPlan
from pipeledger.orchestrators.parallel import fail_running_steps, report_finished, show_output
from pipeledger.orchestrators.step_runner import StepOutcome, StepRunner, WorkerLostError
from pipeledger.orchestrators.worker import StepResult, StepTask, run_step_task
from pipeledger.stack.flavor import FlavorConfig, OrchestratorFlavor

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)


class DaskOrchestratorConfig(FlavorConfig):
    """Configuration of the ``dask`` orchestrator."""

    address: str | None = Field(
        None, description="Address of a running Dask scheduler (tcp://host:8786); unset: a LocalCluster per run."
    )
    n_workers: int = Field(2, ge=1, description="Worker processes of the LocalCluster (without --address).")
    threads_per_worker: int = Field(1, ge=1, description="Threads per worker of the LocalCluster.")
    retries: int = Field(
        2, ge=0, description="How often a step runs again when the worker running it is lost (killed, out of memory)."
    )
    connect_timeout: float = Field(
        10.0, gt=0, description="Seconds to reach the scheduler, or to wait for it to come back during a run."
    )

    @model_validator(mode="after")
    def _address_or_local(self) -> DaskOrchestratorConfig:
        local = {"n_workers", "threads_per_worker"} & self.model_fields_set
        if self.address is not None and local:
            raise ValueError(
                f"give either address (an existing cluster) or {'/'.join(sorted(local))} (a LocalCluster), not both"
            )
        return self


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            f"the dask orchestrator needs dask.distributed ({exc}); install it: pip install 'pipeledger[dask]'"
        ) from exc
    return distributed


class DaskOrchestrator(Orchestrator):
    """Runs each step as a Dask task (see the module's docstring)."""

    flavor = "dask"

    def __init__(self, name: str = "default", config: DaskOrchestratorConfig | None = None) -> None:
        super().__init__(name)
        self.config = config or DaskOrchestratorConfig()
        self._connected: tuple[Client, str] | None = None

    def describe(self) -> dict[str, Any]:
        return {"flavor": self.flavor, **self.config.model_dump()}

    @contextlib.contextmanager
    def connect(self) -> Iterator[tuple[Client, str]]:
        """A client of the configured cluster (a LocalCluster started now and stopped after), and
        the cluster's address.

        Raises:
            OrchestratorUnavailableError: the scheduler cannot be reached.
        """
        distributed = _distributed()
        import dask

        config = self.config
        settings = {
            # Step code may start processes of its own: workers must not be daemonic.
            "distributed.worker.daemon": False,
            # A task whose worker dies is tried on others this many times (then KilledWorker).
            "distributed.scheduler.allowed-failures": config.retries,
        }
        with dask.config.set(settings):
            if config.address is None:
                with contextlib.ExitStack() as stack:
                    stack.enter_context(_main_not_reimported())
                    # host given: Dask would otherwise probe an outside address to find its own.
                    cluster = stack.enter_context(
                        distributed.LocalCluster(
                            n_workers=config.n_workers,
                            threads_per_worker=config.threads_per_worker,
                            processes=True,
                            host="127.0.0.1",
                            dashboard_address=None,
                            silence_logs=logging.ERROR,
                        )
                    )
                    client = stack.enter_context(distributed.Client(cluster, timeout=config.connect_timeout))
                    yield client, cluster.scheduler_address
                return
            try:
                client = distributed.Client(config.address, timeout=config.connect_timeout)
            except OSError as exc:
                raise OrchestratorUnavailableError(
                    f"cannot reach the Dask scheduler at {config.address} within {config.connect_timeout:g} s "
                    f"({type(exc).__name__}); start it (`dask scheduler`) or fix the orchestrator's address"
                ) from exc
            with client:
                yield client, config.address

    @contextlib.contextmanager
    def prepare(self, plan: RunPlan) -> Iterator[None]:
        """Connect to (or start) the cluster and run :func:`check_before_run`, before the run is
        recorded; the cluster is left (or stopped) after the run."""
        with self.connect() as (client, where):
            check_before_run(client, plan, where)
            self._connected = (client, where)
            try:
                yield
            finally:
                self._connected = None

    def execute(self, plan: RunPlan, runner: StepRunner) -> dict[str, StepOutcome]:
        if self._connected is None:
            raise RuntimeError("DaskOrchestrator.execute runs inside prepare(); call run()")
        client, where = self._connected
        return _Execution(client, where, plan, runner, self.config).run()


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """While it lasts, worker processes started with ``spawn`` do not import the script being run
    (``__main__``): its ``__file__`` and ``__spec__`` are hidden. Steps defined in the script are
    sent to the workers by value, so they need not import it; a script without an
    ``if __name__ == "__main__":`` guard would otherwise run again in each worker. The script
    keeps the module name it is recorded under (entrypoints, cache keys) meanwhile."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    keys = ("__file__", "__spec__", RECORDED_NAME_ATTRIBUTE)
    saved: dict[str, Any] = {k: main.__dict__[k] for k in keys if k in main.__dict__}
    main.__dict__[RECORDED_NAME_ATTRIBUTE] = module_name("__main__")
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        for key in keys:
            main.__dict__.pop(key, None)
        main.__dict__.update(saved)


class _Execution:
    """One run's tasks on the cluster and the loop that follows them."""

    def __init__(
        self, client: Client, where: str, plan: RunPlan, runner: StepRunner, config: DaskOrchestratorConfig
    ) -> None:
        self.client = client
        self.where = where
        self.plan = plan
        self.runner = runner
        self.config = config
        self.results: dict[str, StepResult] = {}
        self.started: set[str] = set()

    def run(self) -> dict[str, StepOutcome]:
        futures = self._submit()
        names = {future.key: name for name, future in futures.items()}
        self._report_ready()
        pending = set(futures.values())
        errored: dict[str, BaseException] = {}
        try:
            while pending:
                done, pending = self._wait(pending)
                for future in done:
                    name = names[future.key]
                    if future.status == "finished":
                        self._finished(future.result())
                    elif future.status == "error":
                        errored[name] = future.exception()
                    else:  # cancelled without us cancelling it: the scheduler dropped the client
                        self._lost(f"the task of step {name!r} was {future.status}")
                self._settle(errored)
                self._report_ready()
        except BaseException as exc:  # Ctrl-C, or the scheduler lost: stop the tasks, end the steps' records
            self.client.cancel(list(pending))
            unfinished = [names[f.key] for f in pending]
            fail_running_steps(
                self.plan.metadata_store, self.runner.run, unfinished, f"interrupted: {type(exc).__name__}: {exc}"
            )
            raise
        return {i.name: self.results[i.name].outcome() for i in self.plan.invocations}

    def _submit(self) -> dict[str, Future]:
        futures: dict[str, Future] = {}
        for invocation in self.plan.invocations:
            task = StepTask(
                self.runner.run,
                invocation,
                self.plan.stores,
                self.plan.cache,
                None,
                max_attempts=self.config.retries + 1,
            )
            futures[invocation.name] = self.client.submit(
                run_step_task,
                task,
                {u: futures[u] for u in invocation.upstream},
                key=f"pipeledger-{invocation.name}-{self.runner.run.id}",
                pure=False,
                resources=dict(invocation.step.resources) or None,
            )
        return futures

    def _wait(self, pending: set[Future]) -> tuple[set[Future], set[Future]]:
        """The futures done within a second, and the others. Raises when the scheduler is
        unreachable, or the cluster has no worker, for ``connect_timeout`` seconds (the tasks
        would wait forever)."""
        distributed = _distributed()
        lost_since: float | None = None
        idle_since: float | None = None
        while True:
            try:
                done, rest = distributed.wait(list(pending), timeout=1, return_when="FIRST_COMPLETED")
                return set(done), set(rest)
            except TimeoutError:
                pass
            except Exception as exc:  # FuturesCancelledError: the client lost the scheduler
                if "Cancelled" not in type(exc).__name__:
                    raise
                reason = re.search(r"reason: ([\w-]+)", str(exc))
                self._lost(reason.group(1) if reason else type(exc).__name__)
            if self.client.status == "running":
                lost_since = None
                if self.client.scheduler_info().get("workers"):
                    idle_since = None
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > self.config.connect_timeout:
                    raise OrchestratorUnavailableError(
                        f"the Dask cluster at {self.where} has had no worker for {self.config.connect_timeout:g} s "
                        f"during run {self.runner.run.name!r}; its unfinished steps are recorded failed "
                        "(start workers: `dask worker`)"
                    )
                continue
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since > self.config.connect_timeout:
                self._lost(f"unreachable for {self.config.connect_timeout:g} s")

    def _lost(self, detail: str) -> NoReturn:
        raise OrchestratorUnavailableError(
            f"lost the Dask scheduler at {self.where} during run {self.runner.run.name!r} ({detail}); "
            "its unfinished steps are recorded failed"
        )

    def _finished(self, result: StepResult) -> None:
        self.results[result.name] = result
        show_output(self.plan, result)
        report_finished(self.plan, result)

    def _settle(self, errored: dict[str, BaseException]) -> None:
        """Steps whose task raised: skipped if an upstream step did not complete (Dask fails the
        dependents of a failed task), else failed with the task's error (e.g. ``KilledWorker``)."""
        for invocation in self.plan.invocations:
            name = invocation.name
            if name not in errored or name in self.results:
                continue
            if any(u not in self.results for u in invocation.upstream):
                continue  # decided after its upstream steps
            broken = [u for u in invocation.upstream if not self.results[u].outputs_usable]
            if broken:
                reason = f"upstream step {broken[0]} failed"
                outcome = self.runner.record_skipped(invocation, reason)
                result = StepResult(name, outcome.status, outcome.step_run_id, 0.0, reason=reason)
            else:
                error = errored[name]
                if type(error).__name__ == "KilledWorker":
                    text = (
                        f"step {name!r}: the worker running it was lost in each of its attempts "
                        f"(killed, or out of memory; retries={self.config.retries}): {error}"
                    )
                    error = WorkerLostError(text)
                else:
                    text = f"step {name!r} could not be run on the cluster: {type(error).__name__}: {error}"
                ids = fail_running_steps(self.plan.metadata_store, self.runner.run, [name], text)
                result = StepResult(name, Status.FAILED, ids.get(name), 0.0, error=error)
            self._finished(result)

    def _report_ready(self) -> None:
        """Show steps whose upstream steps have completed as running (queued or running on a worker)."""
        for invocation in self.plan.invocations:
            name = invocation.name
            if name in self.started or name in self.results:
                continue
            if all(u in self.results and self.results[u].outputs_usable for u in invocation.upstream):
                self.started.add(name)
                self.plan.reporter.step_started(name)


class DaskOrchestratorFlavor(OrchestratorFlavor):
    """The ``dask`` orchestrator flavor (``pip install 'pipeledger[dask]'``)."""

    name = "dask"
    description = (
        "Runs each step as a task of a Dask cluster: a LocalCluster it starts (--n-workers, "
        "--threads-per-worker) or an existing one (--address=tcp://scheduler:8786)."
    )
    config_class = DaskOrchestratorConfig

    def create(self, component_name: str, config: Any, home: Path) -> DaskOrchestrator:
        return DaskOrchestrator(component_name, config)
