"""The one place where database rows become :mod:`pipeledger.models` records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row

from pipeledger.models import (
    ArtifactRecord,
    Direction,
    PipelineRecord,
    RunRecord,
    Status,
    StepIO,
    StepRunRecord,
)


def pipeline(row: Row[Any]) -> PipelineRecord:
    m = row._mapping
    return PipelineRecord(id=m["id"], name=m["name"], created_at=m["created_at"], docstring=m["docstring"])


def run(row: Row[Any]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        id=m["id"],
        pipeline_id=m["pipeline_id"],
        pipeline_name=m["pipeline_name"],
        name=m["name"],
        number=m["number"],
        status=Status(m["status"]),
        start_time=m["start_time"],
        end_time=m.get("end_time"),
        heartbeat_at=m["heartbeat_at"],
        parameters=m["parameters"],
        config=m["config"],
        environment=m["environment"],
        stack=m["stack"],
        git_sha=m["git_sha"],
        git_dirty=m["git_dirty"],
        code_hash=m["code_hash"],
        error=m.get("error"),
        tags=m["tags"] or [],
    )


def step_run(row: Row[Any]) -> StepRunRecord:
    return step_run_from_values(row._mapping)


def step_run_from_values(m: Mapping[str, Any]) -> StepRunRecord:
    """A step run record from column values (a row's mapping, or the values just inserted)."""
    return StepRunRecord(
        id=m["id"],
        run_id=m["run_id"],
        name=m["name"],
        status=Status(m["status"]),
        start_time=m["start_time"],
        end_time=m.get("end_time"),
        entrypoint=m.get("entrypoint"),
        docstring=m.get("docstring"),
        parameters=m["parameters"],
        config=m["config"],
        source_hash=m.get("source_hash"),
        cache_key=m.get("cache_key"),
        cached_from_id=m.get("cached_from_id"),
        error=m.get("error"),
        logs_uri=m.get("logs_uri"),
        cache_components=m.get("cache_components"),
        cache_invalidated_at=m.get("cache_invalidated_at"),
    )


def artifact(row: Row[Any], prefix: str = "") -> ArtifactRecord:
    m = row._mapping
    return ArtifactRecord(
        id=m[prefix + "id"],
        uri=m[prefix + "uri"],
        type=m[prefix + "type"],
        data_type=m[prefix + "data_type"],
        materializer=m[prefix + "materializer"],
        materializer_version=m[prefix + "materializer_version"],
        content_hash=m[prefix + "content_hash"],
        size=m[prefix + "size"],
        producer_step_run_id=m[prefix + "producer_step_run_id"],
        created_at=m[prefix + "created_at"],
        artifact_store=m[prefix + "artifact_store"],
    )


def step_io(row: Row[Any]) -> StepIO:
    m = row._mapping
    return StepIO(
        step_run_id=m["step_run_id"],
        name=m["io_name"],
        direction=Direction(m["direction"]),
        artifact=artifact(row),
    )
