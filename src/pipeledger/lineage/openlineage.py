"""OpenLineage export: each step run becomes a START and a COMPLETE/FAIL ``RunEvent``.

* job: ``namespace`` (default ``pipeledger``) and name ``<pipeline>.<step>``, with a
  ``sourceCodeLocation`` facet (see :mod:`pipeledger.lineage.source_location`: the file's URL,
  the repository, the file's path in it, the commit);
* run: the step run's id as a UUID, with a ``parent`` facet naming the pipeline run,
  an ``errorMessage`` facet for failed steps (``message``: the exception's own message,
  :attr:`~pipeledger.models.StepRunRecord.failure_message`; ``stackTrace``: the recorded
  traceback) and a ``pipeledger`` facet (status, cache origin);
* inputs/outputs: the artifacts, as datasets named by URI (``file`` namespace and the
  absolute path for local files, ``scheme://authority`` and the path otherwise).

No event carries a credential: every URL in an event (the git remote of
``sourceCodeLocation``, dataset URIs, URLs quoted in error messages) is redacted with
:func:`pipeledger.redact.redact_json` (userinfo and token query parameters removed),
also for runs recorded before pipeledger redacted what it records.

Events follow OpenLineage spec 2-0-2: the tests validate every event, and each standard facet
against its own schema, with OpenLineage's published JSON schemas (formats checked: URIs,
UUIDs, times), and build them with the classes ``openlineage-python`` generates from them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from pipeledger import __version__
from pipeledger.exceptions import PipeledgerError
from pipeledger.lineage.graph import step_artifacts
from pipeledger.lineage.source_location import source_code_location
from pipeledger.models import (
    ArtifactRecord,
    Direction,
    RunRecord,
    Status,
    StepIO,
    StepRunRecord,
    shown_run_status,
    shown_step_status,
)
from pipeledger.redact import redact_json, redact_text, redact_url

if TYPE_CHECKING:
    from pipeledger.lineage.graph import LineageGraph
    from pipeledger.metadata_store.base import MetadataStore


class RecordedRun(Protocol):
    """A run to export: its record and the store it was read from (a
    :class:`~pipeledger.client.RunView` is one)."""

    @property
    def record(self) -> RunRecord: ...

    @property
    def store(self) -> MetadataStore: ...


PRODUCER = f"https://pypi.org/project/pipeledger/{__version__}"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PARENT_SCHEMA = "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"
ERROR_SCHEMA = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
SOURCE_SCHEMA = (
    "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet"
)
PIPELEDGER_FACET_SCHEMA = f"https://pypi.org/project/pipeledger/{__version__}#/facets/PipeledgerRunFacet"


def _uuid(pipeledger_id: str) -> str:
    return str(uuid.UUID(hex=pipeledger_id))


def _time(moment: datetime) -> str:
    # always with microseconds, so that times compare as strings (events are sorted by them)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def dataset(artifact: ArtifactRecord) -> dict[str, Any]:
    """An artifact as an OpenLineage dataset named by its URI."""
    parts = urlsplit(artifact.uri)
    if parts.scheme in ("", "file"):
        namespace, name = "file", parts.path or artifact.uri
    else:
        namespace, name = f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or "/"
    return {"namespace": namespace, "name": name, "facets": {}}


def _source_location(run: RunRecord, step: StepRunRecord) -> dict[str, Any] | None:
    location = source_code_location(run, step)
    if location is None:
        return None
    return {"_producer": PRODUCER, "_schemaURL": SOURCE_SCHEMA, **location}


def step_events(
    step: StepRunRecord, run: RunRecord, io: list[StepIO], namespace: str = "pipeledger"
) -> list[dict[str, Any]]:
    """START and, once finished, COMPLETE (completed or cached) or FAIL/ABORT events of a step run
    (``io``: its edges, from :meth:`MetadataStore.list_step_io`). Steps recorded ``running``
    show the status every read shows (see :func:`~pipeledger.models.shown_run_status`)."""
    status = shown_step_status(step.status, shown_run_status(run.status, run.heartbeat_at))
    job: dict[str, Any] = {"namespace": namespace, "name": f"{run.pipeline_name}.{step.name}", "facets": {}}
    location = _source_location(run, step)
    if location:
        job["facets"]["sourceCodeLocation"] = location
    run_facets: dict[str, Any] = {
        "parent": {
            "_producer": PRODUCER,
            "_schemaURL": PARENT_SCHEMA,
            "run": {"runId": _uuid(run.id)},
            "job": {"namespace": namespace, "name": run.pipeline_name},
        },
        "pipeledger": {
            "_producer": PRODUCER,
            "_schemaURL": PIPELEDGER_FACET_SCHEMA,
            "status": status.value,
            "stepRunId": step.id,
            "runName": run.name,
            "cachedFrom": _uuid(step.cached_from_id) if step.cached_from_id else None,
        },
    }
    inputs = [dataset(a) for a in step_artifacts(step, io, Direction.INPUT).values()]
    outputs = [dataset(a) for a in step_artifacts(step, io, Direction.OUTPUT).values()]
    base = {"producer": PRODUCER, "schemaURL": SCHEMA_URL, "job": job}
    events = [
        {
            **base,
            "eventType": "START",
            "eventTime": _time(step.start_time),
            "run": {"runId": _uuid(step.id), "facets": run_facets},
            "inputs": inputs,
            "outputs": [],
        }
    ]
    # A step of a crashed run not yet marked so has no end time: it ended at the last heartbeat.
    beat = run.heartbeat_at
    ended = step.end_time or (max(beat, step.start_time) if beat and status is Status.CRASHED else None)
    if ended is None or status is Status.RUNNING:
        return list(redact_json(events))
    final_facets = dict(run_facets)
    event_type = {Status.FAILED: "FAIL", Status.CRASHED: "ABORT"}.get(status, "COMPLETE")
    message = step.failure_message
    if status is Status.FAILED and message is not None:
        final_facets["errorMessage"] = {
            "_producer": PRODUCER,
            "_schemaURL": ERROR_SCHEMA,
            "message": message,
            "programmingLanguage": "python",
        }
        if step.error:
            final_facets["errorMessage"]["stackTrace"] = step.error
    events.append(
        {
            **base,
            "eventType": event_type,
            "eventTime": _time(ended),
            "run": {"runId": _uuid(step.id), "facets": final_facets},
            "inputs": inputs,
            "outputs": outputs,
        }
    )
    return list(redact_json(events))


def run_events(run: RecordedRun, namespace: str = "pipeledger") -> list[dict[str, Any]]:
    """Events of every step run of a pipeline run (e.g. ``Client().get_run("training-3")``), in
    time order."""
    return _events_of(run.store, run.record, None, namespace)


def _events_of(store: MetadataStore, run: RunRecord, step_ids: set[str] | None, namespace: str) -> list[dict[str, Any]]:
    """Events of the step runs of ``run`` (those in ``step_ids``, or all), in time order; the
    step runs' edges are read in one call. Steps are keyed by name, as a run's steps are. A
    ``skipped`` step never ran: it has no events."""
    steps = [s for s in {s.name: s for s in store.list_step_runs(run.id)}.values() if s.status is not Status.SKIPPED]
    if step_ids is not None:
        steps = [s for s in steps if s.id in step_ids]
    grouped: dict[str, list[StepIO]] = {}
    for edge in store.list_step_io([s.id for s in steps]):
        grouped.setdefault(edge.step_run_id, []).append(edge)
    events = [e for step in steps for e in step_events(step, run, grouped.get(step.id, []), namespace)]
    return sorted(events, key=lambda e: (e["eventTime"], e["eventType"] != "START"))


def graph_events(graph: LineageGraph, namespace: str = "pipeledger") -> list[dict[str, Any]]:
    """Events of every step run in a lineage graph (read from the store the graph came from)."""
    store = graph.store
    if store is None:
        raise PipeledgerError("this lineage graph has no metadata store to read step details from")
    events: list[dict[str, Any]] = []
    wanted: dict[str, set[str]] = {}
    for node in graph.steps:
        if node.attributes.get("run_id"):  # steps that did not run (in a run's DAG) have no events
            wanted.setdefault(str(node.attributes["run_id"]), set()).add(node.id)
    for run_id, step_ids in wanted.items():
        events.extend(_events_of(store, store.get_run(run_id), step_ids, namespace))
    return sorted(events, key=lambda e: (e["eventTime"], e["eventType"] != "START"))


def post_events(events: list[dict[str, Any]], url: str, *, api_key: str | None = None, timeout: float = 10) -> int:
    """POST each event as JSON to an OpenLineage HTTP endpoint (Marquez: ``http://host:5000``,
    events go to ``/api/v1/lineage``). Returns how many were accepted.

    Raises:
        PipeledgerError: the endpoint refused an event or cannot be reached.
    """
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/api/v1/lineage"):
        endpoint += "/api/v1/lineage"
    shown = redact_url(endpoint)  # error messages never show a token given in the URL
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    for count, event in enumerate(events):
        request = urllib.request.Request(endpoint, data=json.dumps(event).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise PipeledgerError(
                f"{shown} refused event {count + 1} of {len(events)}: HTTP {exc.code} {exc.reason}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PipeledgerError(f"cannot post OpenLineage events to {shown}: {redact_text(str(reason))}") from exc
    return len(events)
