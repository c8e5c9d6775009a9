"""Running independent steps at once in a pool of worker processes or threads.

The client (this process) keeps the schedule: a step is submitted when its upstream steps have
completed, with at most ``max_parallelism`` steps running. Each step runs in a worker through
:func:`~pipeledger.orchestrators.worker.run_step_task`, which records it in the metadata store
itself. What a step prints is captured in the worker (into its logs) and shown here when the
step ends. After a failure, what happens to the other steps is set by ``on_failure``:

- ``continue`` (default, as the sequential orchestrator): steps downstream of the failed step
  are recorded ``skipped``; the other steps still run;
- ``stop``: no step starts any more; running steps finish; the rest are recorded ``skipped``;
- ``cancel``: as ``stop``, and running steps are cancelled (their worker processes killed) and
  recorded ``failed``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Literal

from pipeledger.exceptions import ConfigError
from pipeledger.limits import storable_text
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import RunRecord, Status, utcnow
from pipeledger.orchestrators.base import RunPlan
from pipeledger.orchestrators.capture import stream_sink
from pipeledger.orchestrators.step_runner import StepOutcome, StepRunner
from pipeledger.orchestrators.worker import FORKED_INVOCATIONS, StepResult, StepTask, run_step_task
from pipeledger.pipelines.tracing import StepInvocation

OnFailure = Literal["continue", "stop", "cancel"]
Workers = Literal["processes", "threads"]


def show_output(plan: RunPlan, result: StepResult) -> None:
    """Show what a step printed in its worker (when output is echoed), as the sequential
    orchestrator would have while it ran."""
    if not plan.echo_output or not result.output:
        return
    sink = plan.reporter.output_sink() or stream_sink(sys.stdout, sys.stderr)
    for stream, text in result.output:
        sink(stream, text)


def report_finished(plan: RunPlan, result: StepResult) -> None:
    """Tell the progress display a step ended (or was skipped)."""
    if result.status is Status.SKIPPED:
        plan.reporter.step_skipped(result.name, result.reason or "an upstream step failed")
        return
    error = f"{type(result.error).__name__}: {result.error}" if result.error else None
    plan.reporter.step_finished(result.name, result.status.value, result.seconds, error)


def fail_running_steps(store: MetadataStore, run: RunRecord, names: Iterable[str], error: str) -> dict[str, str]:
    """Record the step runs named ``names`` that are still ``running`` in ``run`` as ``failed``
    with ``error``; returns their ids by name."""
    wanted = set(names)
    text = storable_text(error)
    failed: dict[str, str] = {}
    for record in store.list_step_runs(run.id):
        if record.name in wanted and record.status is Status.RUNNING:
            store.finish_step(record.id, Status.FAILED, end_time=utcnow(), error=text, error_message=text)
            failed[record.name] = record.id
    return failed


def execute_in_pool(
    plan: RunPlan,
    runner: StepRunner,
    *,
    max_parallelism: int,
    workers: Workers,
    on_failure: OnFailure,
    start_method: str | None = None,
) -> dict[str, StepOutcome]:
    """Run the plan's steps with up to ``max_parallelism`` at once; return their outcomes.

    Raises:
        ConfigError: worker processes are asked for but the stores were given as objects
            (not built from a registered stack), so workers cannot open them.
    """
    if workers == "processes" and plan.stores is None:
        raise ConfigError(
            "the local orchestrator's worker processes open the stack's stores themselves, but this run's "
            "stores were given as objects; run on a registered stack, or set --workers=threads"
        )
    method = start_method or _default_start_method()
    if workers == "processes" and method == "fork":  # the workers inherit the invocations
        FORKED_INVOCATIONS[runner.run.id] = {i.name: i for i in plan.invocations}

    def new_executor() -> cf.Executor:
        if workers == "threads":
            return cf.ThreadPoolExecutor(max_parallelism, thread_name_prefix="step-worker")
        return cf.ProcessPoolExecutor(max_parallelism, mp_context=multiprocessing.get_context(method))

    executor = new_executor()
    results: dict[str, StepResult] = {}
    running: dict[cf.Future[StepResult], str] = {}
    pending: list[StepInvocation] = list(plan.invocations)
    stopped_by: str | None = None
    try:
        while pending or running:
            for invocation in list(pending):
                if len(running) >= max_parallelism:
                    break
                if any(u not in results for u in invocation.upstream):
                    continue  # waits for an upstream step
                pending.remove(invocation)
                broken = [u for u in invocation.upstream if not results[u].outputs_usable]
                if broken or stopped_by is not None:
                    reason = (
                        f"upstream step {broken[0]} failed" if broken else f"step {stopped_by} failed ({on_failure})"
                    )
                    outcome = runner.record_skipped(invocation, reason)
                    results[invocation.name] = StepResult(invocation.name, outcome.status, outcome.step_run_id, 0.0)
                    plan.reporter.step_skipped(invocation.name, reason)
                    continue
                forked = workers == "processes" and runner.run.id in FORKED_INVOCATIONS
                task = StepTask(
                    runner.run,
                    invocation.name if forked else invocation,
                    plan.stores,
                    plan.cache,
                    plan.materializers if workers == "threads" else None,
                )
                plan.reporter.step_started(invocation.name)
                upstream = {u: results[u] for u in invocation.upstream}
                stores = (plan.metadata_store, plan.artifact_store) if workers == "threads" else None
                try:
                    future = executor.submit(run_step_task, task, upstream, stores)
                except BrokenProcessPool:  # a worker process died (killed, out of memory): a new pool
                    executor.shutdown(wait=False)
                    executor = new_executor()
                    future = executor.submit(run_step_task, task, upstream, stores)
                running[future] = invocation.name
            if not running:
                continue
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                result = _result_of(plan, runner.run, future, name)
                results[name] = result
                show_output(plan, result)
                report_finished(plan, result)
                if result.status is Status.FAILED and on_failure != "continue" and stopped_by is None:
                    stopped_by = name
                    if on_failure == "cancel" and running:
                        _cancel(plan, runner.run, executor, running, results, f"cancelled: step {name} failed")
    except BaseException as exc:  # Ctrl-C, or the store failing: stop the workers, end the steps' records
        _cancel(plan, runner.run, executor, running, results, f"interrupted: {type(exc).__name__}: {exc}")
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        FORKED_INVOCATIONS.pop(runner.run.id, None)
    return {name: result.outcome() for name, result in results.items()}


def _result_of(plan: RunPlan, run: RunRecord, future: cf.Future[StepResult], name: str) -> StepResult:
    """The future's result; a worker that died (killed, out of memory) fails the step."""
    try:
        return future.result()
    except Exception as exc:
        text = (
            f"the worker process running step {name!r} was lost (it, or another worker of the pool, was "
            f"killed or ran out of memory): {type(exc).__name__}: {exc}"
        )
        ids = fail_running_steps(plan.metadata_store, run, [name], text)
        return StepResult(name, Status.FAILED, ids.get(name), 0.0, error=RuntimeError(text))


def _cancel(
    plan: RunPlan,
    run: RunRecord,
    executor: cf.Executor,
    running: dict[cf.Future[StepResult], str],
    results: dict[str, StepResult],
    reason: str,
) -> None:
    """Stop the running steps (worker processes are killed; threads cannot be: they finish) and
    record those left ``running`` as ``failed`` with ``reason``."""
    if isinstance(executor, cf.ProcessPoolExecutor):
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
    else:
        cf.wait(running)
    names = list(running.values())
    ids = fail_running_steps(plan.metadata_store, run, names, reason)
    for future, name in list(running.items()):
        if future.done() and not future.exception():
            result = future.result()
        else:
            result = StepResult(name, Status.FAILED, ids.get(name), 0.0, error=RuntimeError(reason))
        results[name] = result
        report_finished(plan, result)
    running.clear()


def _default_start_method() -> str:
    """``fork`` where there is one (the step functions need not be importable), else ``spawn``."""
    methods: Sequence[str] = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods else "spawn"
