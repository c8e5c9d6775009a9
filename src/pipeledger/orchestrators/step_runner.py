"""Executing one step and recording it: the code path every orchestrator shares.

For one step invocation :func:`run_step`

1. loads its input artifacts from the artifact store,
2. records the step run as ``running`` (one transaction, with its input edges),
3. calls the function with its output and logs captured and a step context,
4. writes each output through its materializer (into a temporary directory,
   then moved into place) and stores the captured logs,
5. records outputs, metadata and the final status (one transaction).

A step that raises, returns the wrong number of outputs, or whose outputs cannot
be materialized is recorded ``failed`` with the traceback text as its error.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeledger.artifacts.materializers import MaterializerRegistry
from pipeledger.artifacts.store import ArtifactStore, read_artifact
from pipeledger.context import StepContext, reset_step_context, step_context
from pipeledger.exceptions import DefinitionError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import (
    ArtifactCreate,
    ArtifactRecord,
    RunRecord,
    Status,
    StepRunCreate,
    new_id,
    utcnow,
)
from pipeledger.orchestrators.capture import capture_output
from pipeledger.pipelines.tracing import StepInvocation


@dataclass
class StepOutcome:
    """How a step ended: its status, outputs by name, and the exception if it failed."""

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

    def run_step(
        self, invocation: StepInvocation, upstream: Mapping[str, Mapping[str, ArtifactRecord]]
    ) -> StepOutcome:
        """Execute ``invocation``; ``upstream[step][output]`` holds finished steps' artifacts."""
        started = time.perf_counter()
        step = invocation.step
        input_records = {name: upstream[ref.step][ref.output] for name, ref in invocation.inputs.items()}
        record = self.metadata_store.start_step(
            StepRunCreate(
                run_id=self.run.id,
                name=invocation.name,
                entrypoint=step.entrypoint,
                docstring=step.docstring,
                parameters=invocation.parameters,
                config={
                    "inputs": {k: f"{v.step}.{v.output}" for k, v in invocation.inputs.items()},
                    "outputs": list(step.signature.output_names),
                    **step.options(),
                },
                source_hash=step.source_hash,
                inputs={name: art.id for name, art in input_records.items()},
            )
        )
        context = StepContext(self.run.pipeline_name, self.run.name, invocation.name, record.id)
        outputs: list[ArtifactCreate] = []
        error: BaseException | None = None
        with capture_output(self.echo_output) as logs:
            token = step_context(context)
            try:
                inputs = {name: read_artifact(art, self.materializers) for name, art in input_records.items()}
                result = step.func(**inputs, **invocation.parameters)
                outputs = self._write_outputs(invocation, result)
            except Exception as exc:
                error = exc
            finally:
                reset_step_context(token)
        if error is not None:
            logs.write(_format_error(error) + "\n")
        logs_uri = self.artifact_store.logs_uri(self.run.pipeline_name, self.run.name, invocation.name)
        self.artifact_store.write_text(logs_uri, logs.getvalue())
        status = Status.FAILED if error else Status.COMPLETED
        created = self.metadata_store.finish_step(
            record.id,
            status,
            end_time=utcnow(),
            outputs=outputs,
            metadata=context.metadata,
            error=_format_error(error) if error else None,
            logs_uri=logs_uri,
        )
        by_name = {spec.name: art for spec, art in zip(outputs, created)}
        return StepOutcome(status, record.id, time.perf_counter() - started, by_name, error)

    def _write_outputs(self, invocation: StepInvocation, result: object) -> list[ArtifactCreate]:
        signature = invocation.step.signature
        names = signature.output_names
        if not names:
            values: tuple[object, ...] = ()
            if result is not None:
                raise DefinitionError(
                    f"step {invocation.name!r} returned a {type(result).__name__} but declares no "
                    "output (-> None); annotate its return type to record the value"
                )
        elif signature.multiple_outputs:
            if not isinstance(result, tuple) or len(result) != len(names):
                got = f"{len(result)} values" if isinstance(result, tuple) else "a single value"
                raise DefinitionError(
                    f"step {invocation.name!r} returned {got} but declares {len(names)} outputs "
                    f"({', '.join(names)})"
                )
            values = result
        else:
            values = (result,)
        created: list[ArtifactCreate] = []
        for spec, value in zip(signature.outputs, values):
            artifact_id = new_id()
            uri = self.artifact_store.artifact_uri(
                self.run.pipeline_name, self.run.name, invocation.name, spec.name, artifact_id
            )
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


def _format_error(error: BaseException) -> str:
    """The exception's traceback text, as recorded for a failed step."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
