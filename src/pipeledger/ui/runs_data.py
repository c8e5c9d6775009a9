"""The rows of the runs table: one page of runs and what the table shows of them, in a bounded
number of statements whatever the store's size (one search for the runs, one for their steps,
one for the steps' metadata)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pipeledger.client import Client, RunView
from pipeledger.client.client import quote
from pipeledger.models import JSON, EntityKind, Status, StepRunRecord, shown_step_status

#: Most runs on one page of the table.
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
#: Most step runs read for one page of runs (the step counts of runs beyond it read as unknown).
MAX_STEPS = 10_000
#: Columns chosen automatically (when the URL chooses none): this many parameters and metrics.
AUTO_COLUMNS = 3

#: Table columns sortable through the search language: column -> search field.
SORTABLE = {
    "status": "status",
    "run": "name",
    "pipeline": "pipeline",
    "started": "started",
    "duration": "duration",
}


@dataclass
class RunRow:
    """What the table shows of one run."""

    run: RunView
    status: Status
    duration: timedelta | None
    steps_total: int
    steps_done: int
    steps_cached: int
    metrics: dict[str, JSON] = field(default_factory=dict)

    def live(self) -> dict[str, Any]:
        """The row's changing values as JSON (for the live-update script)."""
        return {
            "id": self.run.id,
            "name": self.run.name,
            "status": self.status.value,
            "duration": self.duration.total_seconds() if self.duration is not None else None,
            "steps_total": self.steps_total,
            "steps_done": self.steps_done,
            "steps_cached": self.steps_cached,
            "ended": self.run.end_time.isoformat() if self.run.end_time else None,
        }


def elapsed(run: RunView, now: datetime | None = None) -> timedelta | None:
    """The run's duration, or for a running run the time since it started."""
    if run.duration is not None:
        return run.duration
    if run.status is not Status.RUNNING:
        return None
    start = run.start_time if run.start_time.tzinfo else run.start_time.replace(tzinfo=timezone.utc)
    return (now or datetime.now(timezone.utc)) - start


def steps_of(client: Client, runs: Sequence[RunView]) -> dict[str, list[StepRunRecord]]:
    """Run id -> its step runs, for ``runs`` (one search, at most :data:`MAX_STEPS` rows)."""
    if not runs:
        return {}
    names = ", ".join(quote(r.name) for r in runs)
    page = client.store.search("step", f"run in ({names})", order_by="started", limit=MAX_STEPS)
    found: dict[str, list[StepRunRecord]] = {r.id: [] for r in runs}
    for record in page.items:
        found.setdefault(record.run_id, []).append(record)
    return found


@dataclass
class Table:
    """One page of the runs table: its rows and the metric keys its runs' steps logged."""

    rows: list[RunRow]
    metric_keys: list[str]


def table_of(client: Client, runs: Sequence[RunView]) -> Table:
    """The table rows of ``runs``, with what their steps logged (a key logged by several steps:
    the last in start order wins), and the numeric keys logged (at most 50: the columns offered)."""
    steps = steps_of(client, runs)
    ids = [s.id for records in steps.values() for s in records]
    logged = client.store.get_metadata(EntityKind.STEP_RUN, ids) if ids else {}
    now = datetime.now(timezone.utc)
    rows = []
    for run in runs:
        records = steps.get(run.id, [])
        status = run.status
        configured = run.config.get("steps")
        total = max(len(configured) if isinstance(configured, dict) else 0, len(records))
        shown = [shown_step_status(s.status, status) for s in records]
        metrics: dict[str, JSON] = {}
        for record in records:
            metrics.update(logged.get(record.id, {}))
        rows.append(
            RunRow(
                run=run,
                status=status,
                duration=elapsed(run, now),
                steps_total=total,
                steps_done=sum(s in (Status.COMPLETED, Status.CACHED, Status.SKIPPED) for s in shown),
                steps_cached=sum(s is Status.CACHED for s in shown),
                metrics=metrics,
            )
        )
    numeric = [{k: v for k, v in row.metrics.items() if _numeric(v)} for row in rows]
    return Table(rows, by_variety(numeric)[:50])


def _numeric(value: JSON) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def by_variety(values: Sequence[dict[str, JSON]]) -> list[str]:
    """The keys of ``values``, those taking the most distinct values first (then by name): the
    columns that tell runs apart."""
    seen: dict[str, set[str]] = {}
    for mapping in values:
        for key, value in mapping.items():
            seen.setdefault(key, set()).add(repr(value))
    return sorted(seen, key=lambda key: (-len(seen[key]), key))


def param_names_of(runs: Sequence[RunView], limit: int = 50) -> list[str]:
    """The pipeline parameter names of ``runs``, the most varied first (at most ``limit``)."""
    return by_variety([run.parameters for run in runs])[:limit]
