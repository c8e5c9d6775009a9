"""Executing one step and recording it: the code path every orchestrator shares.

For one step invocation :func:`run_step`

1. loads its input artifacts from the artifact store,
2. records the step run as ``running`` (one transaction, with its input edges),
3. calls the function with its output and logs captured and a step context,
4. writes each output through its materializer (into a temporary directory,
   then moved into place) and stores the captured logs,
5. records outputs, metadata and the final status (one transaction).

With :attr:`StepRunner.hold_finishes` (the sequential local orchestrator sets it), step 5 of a
completed step is held and recorded in the same transaction as the next step's start (2),
:meth:`MetadataStore.finish_and_start`: a run of S steps commits S + 1 transactions instead of
2S (one request instead of two per step through a server). The hold lasts from the step's end
to the next step's start (its cache look-up): :meth:`StepRunner.flush` records a held finish
at once, and every other write of the runner (a cache hit, a skipped step, the end of the run)
flushes first. A process killed inside that window leaves the finished step ``running``, and
crash detection then marks it ``crashed``, as for a process killed while the step ran.

A step that raises, returns the wrong number of outputs or an output of another type
than it declares, or whose outputs cannot be materialized is recorded ``failed``
with the traceback text as its error. So is a step whose results cannot be recorded
(names or values beyond :mod:`pipeledger.limits`, a database that refuses them or is
lost): see :meth:`StepRunner._finish`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import traceback
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeledger.artifacts.materializers import MaterializerRegistry
from pipeledger.artifacts.store import ArtifactStore, read_artifact, uri_exists, verify_artifact
from pipeledger.caching import explain
from pipeledger.caching.key import compute_cache_key
from pipeledger.caching.policy import CachePolicy
from pipeledger.context import StepContext, reset_step_context, step_context
from pipeledger.exceptions import (
    ArtifactStoreUnavailableError,
    CacheEntryGoneError,
    DefinitionError,
    MaterializerError,
    NotFoundError,
)
from pipeledger.limits import check_metadata, check_name, storable_text
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import (
    JSON,
    ArtifactCreate,
    ArtifactRecord,
    EntityKind,
    RunRecord,
    Status,
    StepRunCreate,
    StepRunRecord,
    new_id,
    utcnow,
)
from pipeledger.orchestrators.capture import OutputSink, capture_output
from pipeledger.pipelines.tracing import StepInvocation
from pipeledger.steps.signature import check_output
from pipeledger.text import article, plural

log = logging.getLogger(__name__)

ATTEMPTS_KEY = "pipeledger.attempts"
"""Step-run metadata key holding the number of attempts of a step whose worker was lost."""


class HeldStepFailed(Exception):
    """The held end of a completed step could not be recorded: the step was recorded ``failed``
    with ``error`` (the store's), before anything of the step being started now was recorded.
    Raised by :class:`StepRunner` for its orchestrator to count that step failed after all."""

    def __init__(self, step_name: str, error: Exception) -> None:
        super().__init__(f"could not record the results of step {step_name!r}: {error}")
        self.step_name = step_name
        self.error = error


class WorkerLostError(Exception):
    """The worker running a step was lost (killed, out of memory) more often than retries allow."""


@dataclass
class StepOutcome:
    """How a step ended: its status, outputs by name, and the exception if it failed.

    ``seconds`` is the step run's recorded duration, ``end_time - start_time`` (0 for a cache
    hit), which the progress display shows too."""

    status: Status
    step_run_id: str
    seconds: float
    outputs: dict[str, ArtifactRecord] = field(default_factory=dict)
    error: BaseException | None = None


@dataclass
class StepRunner:
    """Runs steps of one pipeline run against a metadata store and an artifact store."""

    run: RunRecord
    metadata_store: MetadataStore
    artifact_store: ArtifactStore
    materializers: MaterializerRegistry
    echo_output: bool = True
    cache: CachePolicy = field(default_factory=CachePolicy)
    output_sink: OutputSink | None = None
    """Where echoed step output goes (e.g. above a live progress display); None for the
    streams in place when the step starts."""
    unfinished: set[str] = field(default_factory=set)
    """Ids of step runs recorded ``running`` whose end is not recorded yet."""
    hold_finishes: bool = False
    """Record a completed step's end with the next step's start (see the module docstring);
    only for an orchestrator that runs one step at a time and calls :meth:`flush` at its end."""
    _held: _HeldFinish | None = field(default=None, init=False, repr=False)

    def flush(self) -> None:
        """Record the held end of a completed step now, if there is one.

        Raises:
            HeldStepFailed: its results could not be recorded; it was recorded ``failed``.
            Exception: the store's error, when even a ``failed`` record could not be written.
        """
        held, self._held = self._held, None
        if held is not None:
            self._record_held(held)

    def _record_held(self, held: _HeldFinish) -> None:
        try:
            self.metadata_store.finish_step(held.step_run_id, Status.COMPLETED, **held.values)
        except Exception as exc:
            text = f"could not record the results of step {held.step_name!r}: {type(exc).__name__}: {exc}"
            log.warning("%s", text)
            self.metadata_store.finish_step(
                held.step_run_id,
                Status.FAILED,
                end_time=held.values["end_time"],
                error=storable_text(text),
                error_message=storable_text(text),
                logs_uri=held.values["logs_uri"],
            )  # raises if even this fails: the step stays in unfinished, for the run's end to handle
            self.unfinished.discard(held.step_run_id)
            raise HeldStepFailed(held.step_name, exc) from exc
        self.unfinished.discard(held.step_run_id)

    def _start(self, create: StepRunCreate) -> StepRunRecord:
        """Record ``create`` as started, with the held end of the previous step if any."""
        held, self._held = self._held, None
        if held is None:
            return self.metadata_store.start_step(create)
        try:
            _, record = self.metadata_store.finish_and_start(
                held.step_run_id, Status.COMPLETED, **held.values, next_step=create
            )
        except Exception:  # record them apart, so that an error is about the right one
            self._record_held(held)
            return self.metadata_store.start_step(create)
        self.unfinished.discard(held.step_run_id)
        return record

    def run_step(self, invocation: StepInvocation, upstream: Mapping[str, Mapping[str, ArtifactRecord]]) -> StepOutcome:
        """Execute ``invocation`` (or reuse a cached result); ``upstream[step][output]`` holds
        the artifacts of finished steps."""
        started = utcnow()  # the step's recorded start: its duration includes the cache look-up
        step = invocation.step
        input_records = {name: upstream[ref.step][ref.output] for name, ref in invocation.inputs.items()}
        cache_key = compute_cache_key(step, invocation.parameters, input_records, self.materializers)
        enabled, disabled_by = self.cache.decide(invocation.name, step.enable_cache)
        look_up = enabled and not self.cache.refresh(invocation.name)
        if look_up and self._held is not None and self._held.cache_key == cache_key.key:
            self.flush()  # the held step is this one's cache entry (the same step twice in a run)
        create = StepRunCreate(
            run_id=self.run.id,
            name=invocation.name,
            entrypoint=step.entrypoint,
            docstring=step.docstring,
            parameters=invocation.parameters,
            config={
                "inputs": {k: f"{v.step}.{v.output}" for k, v in invocation.inputs.items()},
                "outputs": list(step.signature.output_names),
                "source_file": step.source_file,
                **step.options(),
            },
            source_hash=step.source_hash,
            cache_key=cache_key.key,
            cache_components=cache_key.components,
            inputs={name: art.id for name, art in input_records.items()},
            start_time=started,
        )
        if not enabled:
            reasons = [explain.DISABLED[disabled_by or "run"]]
        elif not look_up:
            reasons = [explain.REFRESH]
        else:
            hit, reasons = self._look_up(invocation, create, cache_key.key)
            if hit is not None:
                return StepOutcome(Status.CACHED, hit[0], 0.0, hit[1])  # recorded with end_time = start_time
        create = _with_cache_info(create, enabled, reasons)
        return self._execute(invocation, create, input_records)

    def retry_step(
        self,
        invocation: StepInvocation,
        record: StepRunRecord,
        upstream: Mapping[str, Mapping[str, ArtifactRecord]],
        max_attempts: int,
    ) -> StepOutcome:
        """Run ``invocation`` again, continuing ``record``: the step run an earlier attempt recorded
        ``running`` before its worker was lost. No new step run is recorded: the attempt number
        is kept in the record's metadata (``pipeledger.attempts``, 2 for the first retry) and this
        attempt finishes ``record``. When the step has had ``max_attempts`` attempts already,
        it is not run again: it is recorded ``failed`` naming the lost attempts."""
        self.flush()
        found = self.metadata_store.get_metadata(EntityKind.STEP_RUN, [record.id]).get(record.id, {})
        previous = found.get(ATTEMPTS_KEY)
        attempt = (previous if isinstance(previous, int) else 1) + 1
        if attempt > max_attempts:
            text = (
                f"step {invocation.name!r}: the worker running it was lost in each of "
                f"{plural(attempt - 1, 'attempt')} (killed, or out of memory); not retried again"
            )
            self.metadata_store.finish_step(record.id, Status.FAILED, end_time=utcnow(), error=text, error_message=text)
            return StepOutcome(
                Status.FAILED, record.id, (utcnow() - record.start_time).total_seconds(), {}, WorkerLostError(text)
            )
        self.metadata_store.put_metadata(EntityKind.STEP_RUN, record.id, {ATTEMPTS_KEY: attempt})
        input_records = {name: upstream[ref.step][ref.output] for name, ref in invocation.inputs.items()}
        return self._execute(invocation, None, input_records, existing=record, attempt=attempt)

    def record_skipped(self, invocation: StepInvocation, reason: str) -> StepOutcome:
        """Record ``invocation`` as ``skipped`` (not run, e.g. because an upstream step failed).

        The step run keeps its parameters and the wiring of its inputs in its configuration
        (``config["skipped"]`` holds ``reason``) but no input or output edge: it consumed and
        produced nothing. It has no cache key, so it is never a cache entry, and
        :meth:`MetadataStore.latest_step_run` passes over it when a later run explains a cache
        miss. Recorded as one ``start_step`` and one ``finish_step`` at the same instant.
        """
        self.flush()
        step = invocation.step
        now = utcnow()
        create = StepRunCreate(
            run_id=self.run.id,
            name=invocation.name,
            entrypoint=step.entrypoint,
            docstring=step.docstring,
            parameters=invocation.parameters,
            config={
                "inputs": {k: f"{v.step}.{v.output}" for k, v in invocation.inputs.items()},
                "outputs": list(step.signature.output_names),
                **step.options(),
                "skipped": reason,
            },
            source_hash=step.source_hash,
            start_time=now,
        )
        record = self.metadata_store.start_step(create)
        self.unfinished.add(record.id)
        self.metadata_store.finish_step(record.id, Status.SKIPPED, end_time=now)
        self.unfinished.discard(record.id)
        return StepOutcome(Status.SKIPPED, record.id, 0.0)

    def _look_up(
        self, invocation: StepInvocation, create: StepRunCreate, key: str
    ) -> tuple[tuple[str, dict[str, ArtifactRecord]] | None, list[str]]:
        """Find a reusable result; record the cache hit, or return why there is none."""
        expires = invocation.step.cache_expires_after
        now = utcnow()
        found = self.metadata_store.find_cached_step(key, not_before=now - expires if expires else None)
        if found is None:
            if expires and self.metadata_store.find_cached_step(key) is not None:
                return None, [explain.EXPIRED]
            return None, self._explain_miss(invocation, create)
        problem = self._unusable(found.outputs)
        if problem:
            return None, [problem]
        run_name = found.run_name or self.metadata_store.get_run(found.step_run.run_id).name
        message = f"{explain.HIT}: reused the outputs of step `{found.step_run.name}` of run `{run_name}`"
        cached = _with_cache_info(create, True, [message])
        self.flush()
        try:
            record = self.metadata_store.record_cached_step(
                cached, cached_from_id=found.step_run.id, outputs={n: a.id for n, a in found.outputs.items()}
            )
        except CacheEntryGoneError:  # deleted (gc, run delete) since the look-up: nothing was recorded
            return None, [explain.entry_deleted(found.step_run.name, run_name)]
        return (record.id, dict(found.outputs)), []

    def _unusable(self, outputs: Mapping[str, ArtifactRecord]) -> str | None:
        """Why cached outputs cannot be reused: files gone, written by an older materializer, or
        (for materializers that could run code from the files, e.g. pickle) changed since they
        were recorded: their content hash is checked before they are reused."""
        for name, artifact in outputs.items():
            if not uri_exists(artifact.uri):
                return explain.ARTIFACT_MISSING
            try:
                materializer = self.materializers.by_path(artifact.materializer)
            except MaterializerError:
                return f"materializer of output `{name}` is not available"
            current = materializer.version
            if current != artifact.materializer_version:
                return f"materializer version of output `{name}` changed {artifact.materializer_version} → {current}"
            if materializer.verify_before_load:
                found = verify_artifact(artifact)
                if found is not None:
                    log.warning(
                        "artifact %s at %s was changed after it was recorded (sha256 %s, recorded %s): "
                        "not reusing it; the step runs again",
                        artifact.id,
                        artifact.uri,
                        found,
                        artifact.content_hash,
                    )
                    return f"the files of output `{name}` changed after they were recorded (content hash differs)"
        return None

    def _explain_miss(self, invocation: StepInvocation, create: StepRunCreate) -> list[str]:
        previous = self.metadata_store.latest_step_run(
            self.run.pipeline_name, invocation.name, before=create.start_time
        )
        reasons = explain.explain_difference(
            create.cache_components or {},
            previous.cache_components if previous else None,
            invocation.step.entrypoint,
        )
        if reasons:
            return reasons
        assert previous is not None
        entry = previous  # the cache entry it was, or (for a cache hit) the one it reused
        if previous.cached_from_id is not None:
            try:
                entry = self.metadata_store.get_step_run(previous.cached_from_id)
            except NotFoundError:  # its run was deleted (gc, run delete) since the read above
                return [explain.NO_MATCH]
        if entry.cache_invalidated_at is not None:
            return ["cache entry cleared with `pipeledger cache clear`"]
        if previous.status is not Status.COMPLETED and previous.status is not Status.CACHED:
            return [f"the earlier run with the same inputs and code ended {previous.status}"]
        return [explain.NO_MATCH]

    def _execute(
        self,
        invocation: StepInvocation,
        create: StepRunCreate | None,
        input_records: Mapping[str, ArtifactRecord],
        existing: StepRunRecord | None = None,
        attempt: int = 1,
    ) -> StepOutcome:
        if existing is not None:
            record = existing
        else:
            assert create is not None
            record = self._start(create)
        self.unfinished.add(record.id)
        step = invocation.step
        context = StepContext(self.run.pipeline_name, self.run.name, invocation.name, record.id)
        step_dir: str | None = None
        outputs: list[ArtifactCreate] = []
        error: BaseException | None = None
        echo: bool | OutputSink = self.echo_output
        if self.echo_output and self.output_sink is not None:
            echo = self.output_sink
        with capture_output(echo) as logs:
            if attempt > 1:
                context.metadata[ATTEMPTS_KEY] = attempt
                print(f"[pipeledger] attempt {attempt}: the worker running the previous attempt was lost")
            token = step_context(context)
            try:
                step_dir = self._step_dir(invocation.name, record.id)
                inputs = {name: read_artifact(art, self.materializers) for name, art in input_records.items()}
                result = step.func(**inputs, **invocation.parameters)
                outputs = self._write_outputs(invocation, result, step_dir)
            except Exception as exc:
                error = exc
            finally:
                reset_step_context(token)
        if error is not None:
            logs.write(_format_error(error) + "\n")
        captured = logs.getvalue()
        logs_uri: str | None = None  # a step that printed nothing has no logs file
        if captured and step_dir is not None:
            logs_uri = self.artifact_store.logs_uri(step_dir)
            try:
                self.artifact_store.write_text(logs_uri, captured)
            except (OSError, ArtifactStoreUnavailableError) as exc:  # a full disk, a lost endpoint: the
                # step's record matters more than its logs
                log.warning("could not store the logs of step %s: %s", invocation.name, exc)
                logs_uri = None
        ended = utcnow()
        status, created, error = self._finish(
            record.id, invocation.name, outputs, context.metadata, error, logs_uri, ended, record.cache_key
        )
        by_name = {spec.name: art for spec, art in zip(outputs, created)}
        return StepOutcome(status, record.id, (ended - record.start_time).total_seconds(), by_name, error)

    def _finish(
        self,
        step_run_id: str,
        step_name: str,
        outputs: list[ArtifactCreate],
        metadata: Mapping[str, JSON],
        error: BaseException | None,
        logs_uri: str | None,
        ended: datetime,
        cache_key: str | None = None,
    ) -> tuple[Status, list[ArtifactRecord], BaseException | None]:
        """Record how a started step ended (at ``ended``); returns its final status, artifacts and error.

        The outputs' names and metadata are checked against :mod:`pipeledger.limits` first. If
        checking or recording fails for any reason (a value the store refuses, the server gone),
        a second, minimal attempt records the step ``failed`` with that error (no outputs, no
        metadata; their files are left for ``gc`` as unrecorded), and the step counts as failed
        (with its own error if it raised, else the recording error). If that fails too, the recording error is
        raised: the step stays ``running`` in :attr:`unfinished`, for
        :meth:`Orchestrator.run <pipeledger.orchestrators.base.Orchestrator.run>` to end, or
        for crash detection (the run's heartbeat stops) to mark ``crashed``.

        With :attr:`hold_finishes`, a completed step's checked results are held instead, for
        the next step's start (see the module docstring).
        """
        status = Status.FAILED if error else Status.COMPLETED
        self.flush()  # nothing is held here (this step's start took it), but never drop one
        try:
            for output in outputs:
                check_name(f"materializer {output.materializer}: artifact_type", output.type)
                check_metadata(output.metadata, f"step {step_name!r}: metadata of output {output.name!r}")
            if self.hold_finishes and error is None:
                values = {"end_time": ended, "outputs": outputs, "metadata": metadata, "logs_uri": logs_uri}
                self._held = _HeldFinish(step_run_id, step_name, cache_key, values)
                return status, [output.to_record(step_run_id, ended) for output in outputs], None
            created = self.metadata_store.finish_step(
                step_run_id,
                status,
                end_time=ended,
                outputs=outputs,
                metadata=metadata,
                error=storable_text(_format_error(error)) if error else None,
                error_message=storable_text(error_message(error)) if error else None,
                logs_uri=logs_uri,
            )
        except Exception as exc:
            recording = f"could not record the results of step {step_name!r}: {type(exc).__name__}: {exc}"
            text = recording
            if error is not None:
                text += "\n\nThe step itself failed first:\n" + _format_error(error)
            log.warning("%s", text.splitlines()[0])
            self.metadata_store.finish_step(
                step_run_id,
                Status.FAILED,
                end_time=ended,
                error=storable_text(text),
                error_message=storable_text(error_message(error) if error is not None else recording),
                logs_uri=logs_uri,
            )  # raises if even this fails: see the docstring
            self.unfinished.discard(step_run_id)
            return Status.FAILED, [], error if error is not None else exc  # the step's own error first
        self.unfinished.discard(step_run_id)
        return status, created, error

    def _step_dir(self, step: str, step_run_id: str) -> str:
        """The step run's directory in the artifact store, under the metadata store's ``stores/<id>/``
        (claimed first: see :meth:`ArtifactStore.claim`)."""
        identity = self.metadata_store.store_identity()
        if identity is not None:
            self.artifact_store.claim(identity, self.metadata_store.describe())
        owner = identity.id if identity is not None else None
        return self.artifact_store.step_dir(
            owner, self.run.pipeline_name, self.run.name, self.run.id, step, step_run_id
        )

    def _write_outputs(self, invocation: StepInvocation, result: object, step_dir: str) -> list[ArtifactCreate]:
        signature = invocation.step.signature
        names = signature.output_names
        if not names:
            values: tuple[object, ...] = ()
            if result is not None:
                raise DefinitionError(
                    f"step {invocation.name!r} returned {article(type(result).__name__)} but declares no "
                    "output (-> None); annotate its return type to record the value"
                )
        elif signature.multiple_outputs:
            if not isinstance(result, tuple) or len(result) != len(names):
                got = plural(len(result), "value") if isinstance(result, tuple) else "a single value"
                raise DefinitionError(
                    f"step {invocation.name!r} returned {got} but declares "
                    f"{plural(len(names), 'output')} ({', '.join(names)})"
                )
            values = result
        else:
            values = (result,)
        for spec, value in zip(signature.outputs, values):  # every output, before writing any
            check_output(invocation.name, spec, value)
        created: list[ArtifactCreate] = []
        for spec, value in zip(signature.outputs, values):
            artifact_id = new_id()
            uri = self.artifact_store.artifact_uri(step_dir, spec.name, artifact_id)
            with _warnings_about(invocation, spec.name):
                written = self.artifact_store.write(value, uri, artifact_id, self.materializers)
            created.append(
                ArtifactCreate(
                    id=artifact_id,
                    name=spec.name,
                    uri=written.uri,
                    type=written.materializer.artifact_type,
                    data_type=written.data_type,
                    materializer=written.materializer.import_path(),
                    materializer_version=written.materializer.version,
                    content_hash=written.content_hash,
                    size=written.size,
                    artifact_store=self.artifact_store.name,
                    metadata=written.metadata,
                )
            )
        return created


@dataclass
class _HeldFinish:
    """The end of a completed step, held to be recorded with the next step's start."""

    step_run_id: str
    step_name: str
    cache_key: str | None
    values: dict[str, Any]
    """``end_time``, ``outputs``, ``metadata`` and ``logs_uri`` of :meth:`MetadataStore.finish_step`."""


def _with_cache_info(create: StepRunCreate, enabled: bool, reasons: list[str]) -> StepRunCreate:
    """``create`` with the cache decision and its explanation in the step's configuration."""
    hit = bool(reasons) and reasons[0].startswith(explain.HIT)
    explanation = reasons[0] if hit else "cache miss: " + "; ".join(reasons)
    cache_info = {"enabled": enabled, "hit": hit, "reasons": reasons, "explanation": explanation}
    return dataclasses.replace(create, config={**create.config, "cache": cache_info})


@contextlib.contextmanager
def _warnings_about(invocation: StepInvocation, output: str) -> Iterator[None]:
    """Warnings given while an output is written (a materializer's, e.g. "no materializer for
    this type") are re-issued naming the step and the output, at the step function's
    definition: that is the line a user can act on, not a line inside pipeledger."""
    with warnings.catch_warnings(record=True) as caught:
        yield
    func = inspect.unwrap(invocation.step.func)
    code = getattr(func, "__code__", None)
    filename = code.co_filename if code is not None else "<step>"
    lineno = code.co_firstlineno if code is not None else 0
    for warning in caught:
        warnings.warn_explicit(
            f"step {invocation.name!r}, output {output!r}: {warning.message}",
            warning.category,
            filename=filename,
            lineno=lineno,
            module=getattr(func, "__module__", None) or "pipeledger",
        )


def _format_error(error: BaseException) -> str:
    """The exception's traceback text, as recorded for a failed step (``error``)."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()


def error_message(error: BaseException) -> str:
    """The exception's own message, as recorded for a failed step (``error_message``): ``str(error)``
    whole (every line; without the notes or the traceback), or the exception's type name when
    that is empty (``raise ValueError()``) or cannot be made (its ``__str__`` raised)."""
    try:
        text = str(error)
    except Exception:
        text = ""
    return text or type(error).__name__
