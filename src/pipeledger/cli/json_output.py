"""The ``--json`` output of the ``list``, ``show`` and ``describe`` commands: one function per
shape, so each shape is defined (and documented, in docs/cli-json.md) in one place.

Conventions: times are ISO 8601 strings in UTC (``2026-11-30T12:00:00.123456+00:00``) or
null; durations are seconds (a number) or null; statuses are the lowercase words the tables
show; every key is always present (null when there is no value). Secrets never appear:
component configurations hold secret *references* (``${env:NAME}``) only, as the tables do.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import click
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from pipeledger.client import ArtifactView, RunView, StepView
from pipeledger.models import CacheEntry
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import describe_fields

JSONValue = Any


def print_json(value: JSONValue) -> None:
    """Print ``value`` as indented JSON on stdout (non-ASCII kept; other values as strings)."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def iso(moment: datetime | None) -> str | None:
    """A time as ISO 8601 in UTC (stored times are naive UTC)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).isoformat()


def seconds(value: timedelta | None) -> float | None:
    """A duration in seconds."""
    return value.total_seconds() if value is not None else None


def run_summary(run: RunView) -> dict[str, JSONValue]:
    """A run as ``run list`` shows it."""
    return {
        "id": run.id,
        "name": run.name,
        "number": run.number,
        "pipeline": run.pipeline_name,
        "project": run.project,
        "status": run.status.value,
        "start_time": iso(run.start_time),
        "end_time": iso(run.end_time),
        "duration_seconds": seconds(run.duration),
    }


def artifact(view: ArtifactView) -> dict[str, JSONValue]:
    """An artifact's record (not its value)."""
    return {
        "id": view.id,
        "uri": view.uri,
        "type": view.type,
        "data_type": view.data_type,
        "size": view.size,
        "content_hash": view.content_hash,
        "created_at": iso(view.created_at),
    }


def artifact_detail(view: ArtifactView, summary: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """An artifact as ``artifact show`` shows it: its record, who produced it, its files and
    preview (``summary``: :meth:`ArtifactView.preview`)."""
    producer = view.producer
    return {
        **artifact(view),
        "materializer": view.materializer,
        "materializer_version": view.materializer_version,
        "artifact_store": view.artifact_store,
        "producer": {"id": producer.id, "step": producer.name, "run": producer.run.name} if producer else None,
        "files": summary["files"],
        "preview": summary["preview"],
    }


def step_detail(step: StepView) -> dict[str, JSONValue]:
    """A step run as ``run show`` shows it."""
    origin = step.cached_from
    return {
        "id": step.id,
        "name": step.name,
        "status": step.status.value,
        "start_time": iso(step.start_time),
        "end_time": iso(step.end_time),
        "duration_seconds": seconds(step.duration),
        "parameters": step.parameters,
        "metadata": step.metadata,
        "outputs": {name: artifact(view) for name, view in step.outputs.items()},
        "cache_key": step.cache_key,
        "cache_explanation": step.cache_explanation,
        "cached_from": None if origin is None else {"id": origin.id, "step": origin.name, "run": origin.run.name},
        "error": step.error,
        "error_message": step.error_message,
    }


def run_detail(run: RunView) -> dict[str, JSONValue]:
    """A run as ``run show`` shows it: the summary, its recorded context and its steps."""
    recorded = set(run.steps)
    return {
        **run_summary(run),
        "parameters": run.parameters,
        "tags": run.tags,
        "git": {"sha": run.git_sha, "dirty": run.git_dirty},
        "code_hash": run.code_hash,
        "environment": run.environment,
        "stack": run.stack,
        "error": run.error,
        "steps": [step_detail(step) for step in run.steps.values()],
        "not_run": [name for name in run.config.get("steps", {}) if name not in recorded],
    }


def pipeline_summary(name: str, pipeline_id: str, runs: int, latest: RunView | None) -> dict[str, JSONValue]:
    """A pipeline as ``pipeline list`` shows it."""
    return {
        "id": pipeline_id,
        "name": name,
        "runs": runs,
        "latest_run": run_summary(latest) if latest is not None else None,
    }


def cache_entry(entry: CacheEntry) -> dict[str, JSONValue]:
    """A cache entry as ``cache list`` shows it (the whole key)."""
    return {
        "step_run_id": entry.step_run_id,
        "step": entry.step_name,
        "pipeline": entry.pipeline_name,
        "run": entry.run_name,
        "cache_key": entry.cache_key,
        "created": iso(entry.created),
        "invalidated_at": iso(entry.invalidated_at),
        "valid": entry.invalidated_at is None,
    }


def stack_summary(name: str, components: dict[ComponentType, str], active: bool) -> dict[str, JSONValue]:
    """A stack as ``stack list`` shows it: its components' names."""
    return {"name": name, "active": active, **{t.value: components[t] for t in ComponentType}}


def field_default(value: Any) -> JSONValue:
    """A configuration field's default as JSON (a value JSON cannot hold as its text)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def flavor_fields(model: type[BaseModel]) -> list[dict[str, JSONValue]]:
    """The configuration fields of a flavor, as ``flavor describe`` shows them."""
    described = describe_fields(model).split(", ")
    fields = []
    for (name, field), text in zip(model.model_fields.items(), described, strict=False):
        type_text = text.partition(" (")[2].rstrip(")")
        required = field.is_required()
        fields.append(
            {
                "name": name,
                "type": type_text,
                "required": required,
                "default": None if required or field.default is PydanticUndefined else field_default(field.default),
                "secret": type_text == "secret reference",
                "description": field.description,
            }
        )
    return fields


def principal(found: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """A user or service account as ``user list`` shows it."""
    return {
        "name": found["name"],
        "kind": found["kind"],
        "server_admin": found["server_admin"],
        "has_password": found["has_password"],
        "disabled": found.get("disabled_at") is not None,
        "roles": found.get("roles", {}),
        "created_at": _server_time(found["created_at"]),
    }


def api_key(found: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """An API key (never its secret) as ``api-key list`` shows it."""
    return {
        "id": found["id"],
        "user": found["principal"],
        "label": found.get("label"),
        "created_at": _server_time(found["created_at"]),
        "expires_at": _server_time(found.get("expires_at")),
        "revoked_at": _server_time(found.get("revoked_at")),
        "last_used_at": _server_time(found.get("last_used_at")),
    }


def project(found: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """A project as ``project list`` shows it."""
    return {
        "name": found["name"],
        "description": found.get("description"),
        "created_at": _server_time(found["created_at"]),
    }


def member(found: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """A project member as ``project member list`` shows it."""
    return {"user": found["principal"], "kind": found["kind"], "role": found["role"]}


def _server_time(value: str | None) -> str | None:
    """A time the server sent (ISO 8601, ``Z`` for UTC) in this document's convention."""
    return None if value is None else iso(datetime.fromisoformat(value.replace("Z", "+00:00")))
