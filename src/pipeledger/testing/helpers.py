"""Builders for the records the contract tests feed to a metadata store.

Every helper takes the store first and returns what the store returned, so a
test reads as the sequence of calls an orchestrator would make.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import (
    ArtifactCreate,
    ArtifactRecord,
    RunCreate,
    RunRecord,
    Status,
    StepRunCreate,
    StepRunRecord,
)

UTC = timezone.utc

#: A fixed instant with a non-zero microsecond part, so precision loss shows.
T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def make_run(store: MetadataStore, pipeline: str = "train", name: str | None = None, **kw: Any) -> RunRecord:
    """Create a run of ``pipeline``; the name defaults to ``"<pipeline>-{n}"``."""
    return store.create_run(RunCreate(pipeline_name=pipeline, name=name or f"{pipeline}-{{n}}", **kw))


def make_step(store: MetadataStore, run: RunRecord, name: str = "load", **kw: Any) -> StepRunRecord:
    """Start a step run called ``name`` in ``run``."""
    return store.start_step(StepRunCreate(run_id=run.id, name=name, **kw))


def artifact(name: str = "output", **kw: Any) -> ArtifactCreate:
    """An output artifact description with plausible defaults."""
    values: dict[str, Any] = {
        "name": name,
        "uri": f"file:///artifacts/{name}",
        "type": "Data",
        "data_type": "builtins.dict",
        "materializer": "pipeledger.artifacts.materializers.builtin.JsonMaterializer",
        "materializer_version": "1",
        "content_hash": "ab" * 32,
        "size": 42,
    }
    values.update(kw)
    return ArtifactCreate(**values)


def finish(
    store: MetadataStore,
    step: StepRunRecord,
    outputs: Sequence[ArtifactCreate] = (),
    status: Status = Status.COMPLETED,
    end_time: datetime | None = None,
    **kw: Any,
) -> list[ArtifactRecord]:
    """Finish ``step`` with ``outputs``; returns the recorded artifacts."""
    return store.finish_step(step.id, status, end_time=end_time or at(60), outputs=outputs, **kw)


def produce(
    store: MetadataStore,
    run: RunRecord,
    step_name: str = "load",
    outputs: Sequence[str] = ("output",),
    inputs: dict[str, str] | None = None,
) -> tuple[StepRunRecord, list[ArtifactRecord]]:
    """Start and complete a step that consumes ``inputs`` and produces named outputs."""
    step = make_step(store, run, step_name, inputs=inputs or {})
    created = finish(store, step, [artifact(o, uri=f"file:///{run.name}/{step_name}/{o}") for o in outputs])
    return step, created
