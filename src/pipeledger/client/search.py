"""Search results on the read side: a page of views, its next page token, and a table of it.

``client.search_runs("params.lr >= 0.01 and tag = 'prod'", order_by=["metrics.accuracy desc"])``
returns a :class:`SearchResults` of :class:`~pipeledger.client.RunView`; ``.to_pandas()`` turns
it into a comparison table (one row per run: attributes, tags, parameters, metrics).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pipeledger.models import EntityKind

V = TypeVar("V")


@dataclass(frozen=True)
class SearchResults(Generic[V]):
    """One page of a search: ``items`` (views, in order) and ``next_page_token`` (pass it as
    ``page_token=`` with the same filter and order for the next page; None on the last)."""

    items: list[V]
    next_page_token: str | None

    def __iter__(self) -> Iterator[V]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> V:
        return self.items[index]

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per item (see :meth:`to_pandas` for the columns)."""
        from pipeledger.client.views import ArtifactView, RunView, StepView

        if not self.items:
            return []
        first = self.items[0]
        if isinstance(first, RunView):
            return _run_rows(self.items)
        if isinstance(first, StepView):
            return _step_rows(self.items)
        assert isinstance(first, ArtifactView)
        return _artifact_rows(self.items)

    def to_pandas(self) -> Any:
        """The page as a pandas DataFrame indexed by run name (runs), step run id (steps) or artifact
        id (artifacts). Runs: ``pipeline status started ended duration_s tags``, then
        ``params.NAME`` and ``metrics.STEP.KEY`` (what each step logged). Needs pandas
        (``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install pandas (or use to_records())") from None
        records = self.to_records()
        frame = pd.DataFrame.from_records(records)
        if frame.empty:
            return frame
        return frame.set_index(next(iter(records[0])))


def _seconds(value: Any) -> float | None:
    return None if value is None else value.total_seconds()


def _run_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    store = runs[0].store
    rows: list[dict[str, Any]] = []
    for run in runs:
        row: dict[str, Any] = {
            "run": run.name,
            "pipeline": run.pipeline_name,
            "status": run.status.value,
            "started": run.start_time,
            "ended": run.end_time,
            "duration_s": _seconds(run.duration),
            "tags": ", ".join(run.tags),
        }
        for name, value in sorted(run.parameters.items()):
            row[f"params.{name}"] = value
        steps = store.list_step_runs(run.id)
        logged = store.get_metadata(EntityKind.STEP_RUN, [s.id for s in steps])
        for step in steps:
            for key, value in sorted(logged.get(step.id, {}).items()):
                row[f"metrics.{step.name}.{key}"] = value
        rows.append(row)
    return rows


def _step_rows(steps: Sequence[Any]) -> list[dict[str, Any]]:
    store = steps[0].store
    logged = store.get_metadata(EntityKind.STEP_RUN, [s.id for s in steps])
    rows = []
    for step in steps:
        row: dict[str, Any] = {
            "id": step.id,
            "step": step.name,
            "run": step.run.name,
            "status": step.status.value,
            "started": step.start_time,
            "duration_s": _seconds(step.duration),
        }
        row.update({f"params.{k}": v for k, v in sorted(step.parameters.items())})
        row.update({f"metrics.{k}": v for k, v in sorted(logged.get(step.id, {}).items())})
        rows.append(row)
    return rows


def _artifact_rows(items: Sequence[Any]) -> list[dict[str, Any]]:
    store = items[0].store
    logged = store.get_metadata(EntityKind.ARTIFACT, [a.id for a in items])
    rows = []
    for artifact in items:
        record = artifact.record
        row: dict[str, Any] = {
            "id": record.id,
            "type": record.type,
            "data_type": record.data_type,
            "size": record.size,
            "created": record.created_at,
            "uri": record.uri,
        }
        row.update({f"metrics.{k}": v for k, v in sorted(logged.get(record.id, {}).items())})
        rows.append(row)
    return rows
