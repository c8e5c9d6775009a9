"""Comparing runs across time: metric histories and the differences between two runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeledger.exceptions import NotFoundError, PipeledgerError
from pipeledger.models import (
    JSON,
    Direction,
    EntityKind,
    MetricPoint,
    RunRecord,
    Status,
    StepRunRecord,
    shown_run_status,
)
from pipeledger.text import agree

if TYPE_CHECKING:
    from pipeledger.metadata_store.base import MetadataStore

UNSUCCESSFUL = (Status.FAILED, Status.CRASHED)


def metrics_table(points: Sequence[MetricPoint]) -> list[dict[str, Any]]:
    """One record per run: ``run``, ``start_time`` and a column per metric.

    A metric key logged by a single step is its own column (``accuracy``); a key
    logged by several steps becomes ``<step>.<key>`` columns.
    """
    steps_per_key: dict[str, set[str]] = {}
    for p in points:
        steps_per_key.setdefault(p.key, set()).add(p.step_name)
    rows: dict[str, dict[str, Any]] = {}
    for p in points:
        row = rows.setdefault(p.run_id, {"run": p.run_name, "start_time": p.run_start})
        column = p.key if len(steps_per_key[p.key]) == 1 else f"{p.step_name}.{p.key}"
        row[column] = p.value
    return list(rows.values())


def metric_points(
    store: MetadataStore, pipeline: str, keys: Sequence[str] | None = None, last: int | None = None
) -> list[MetricPoint]:
    """What :meth:`MetadataStore.metric_history` returns, but a key no step of ``pipeline`` ever
    logged is an error rather than an empty result.

    Raises:
        NotFoundError: an unknown pipeline, or unknown keys (the message lists the logged keys).
    """
    store.get_pipeline(pipeline)  # a clear error for an unknown pipeline
    points = store.metric_history(pipeline, keys=list(keys) if keys else None, limit=last)
    missing = [k for k in dict.fromkeys(keys or ()) if k not in {p.key for p in points}]
    if missing:
        known = sorted({p.key for p in store.metric_history(pipeline)})
        logged = f"its steps logged: {', '.join(known)}" if known else "its steps logged no metric"
        where = f" in its latest {last} runs" if last is not None and set(missing) & set(known) else ""
        raise NotFoundError(
            f"pipeline {pipeline!r} has no {agree(len(missing), 'metric')} {', '.join(map(repr, missing))}{where}; "
            f"{logged}"
        )
    return points


@dataclass(frozen=True)
class MetricHistory:
    """A pipeline's metrics run by run (oldest first): :func:`metrics_table`'s ``records`` with
    each run's ``status`` added, and the metric ``columns`` in the order they were first logged."""

    pipeline: str
    records: list[dict[str, Any]]
    columns: list[str]


def metric_history(
    store: MetadataStore, pipeline: str, keys: Sequence[str] | None = None, last: int | None = None
) -> MetricHistory:
    """The metrics ``pipeline``'s steps logged, with each run's status (``crashed`` derived as
    everywhere). Two queries (three when a key is unknown).

    Raises:
        NotFoundError: an unknown pipeline or metric key (see :func:`metric_points`).
    """
    records = metrics_table(metric_points(store, pipeline, keys, last))
    if records:
        runs = store.list_runs(pipeline=pipeline, since=min(r["start_time"] for r in records), limit=None)
        statuses = {r.name: shown_run_status(r.status, r.heartbeat_at) for r in runs}
        for record in records:
            record["status"] = statuses.get(record["run"])
    columns = [c for c in dict.fromkeys(k for r in records for k in r) if c not in ("run", "start_time", "status")]
    return MetricHistory(pipeline, records, columns)


def plot_metrics(history: MetricHistory, path: Path) -> Any:
    """Draw ``history`` as a PNG: one panel per numeric metric (its own y axis), runs along a shared
    x axis; failed and crashed runs are marked with a red cross and a dotted line across every
    panel. Returns the matplotlib Figure (closed: inspect it, e.g. ``figure.axes``, do not show it).

    Raises:
        PipeledgerError: matplotlib is not installed, or no selected metric is numeric.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PipeledgerError(
            "--plot needs matplotlib: pip install 'pipeledger[plot]' (or pip install matplotlib)"
        ) from exc
    records = history.records
    numeric = [
        c
        for c in history.columns
        if any(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in records)
    ]
    if not numeric:
        raise PipeledgerError("none of the selected metrics is numeric: nothing to plot")
    failed = [i for i, r in enumerate(records) if r.get("status") in UNSUCCESSFUL]
    figure, axes = plt.subplots(len(numeric), 1, sharex=True, figsize=(8, 1.2 + 2.2 * len(numeric)), squeeze=False)
    for panel, column in zip(axes[:, 0], numeric):
        points = [
            (i, r[column])
            for i, r in enumerate(records)
            if isinstance(r.get(column), (int, float)) and not isinstance(r.get(column), bool)
        ]
        panel.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="tab:blue", label=column)
        bad = [p for p in points if p[0] in failed]
        if bad:
            panel.plot(
                [p[0] for p in bad],
                [p[1] for p in bad],
                linestyle="none",
                marker="X",
                markersize=10,
                color="tab:red",
                label="failed run",
            )
        for index in failed:
            panel.axvline(index, color="tab:red", linestyle=":", alpha=0.6)
        panel.set_ylabel(column)
        panel.grid(alpha=0.3)
        if bad:
            panel.legend(loc="best", fontsize=8)
    bottom = axes[-1, 0]
    bottom.set_xticks(range(len(records)), [r["run"] for r in records], rotation=45, ha="right", fontsize=8)
    for index in failed:
        bottom.get_xticklabels()[index].set_color("tab:red")
    figure.suptitle(f"{history.pipeline}: metrics over runs")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    plt.close(figure)
    return figure


def metrics_frame(points: Sequence[MetricPoint]) -> Any:
    """:func:`metrics_table` as a pandas DataFrame indexed by run name, when pandas is installed;
    otherwise the list of records."""
    records = metrics_table(points)
    try:
        import pandas as pd
    except ImportError:
        return records
    frame = pd.DataFrame.from_records(records)
    return frame.set_index("run") if not frame.empty else frame


@dataclass(frozen=True)
class Difference:
    """One thing that differs between two runs: its section, what it is, and both values."""

    section: str  # parameters, code, environment, metrics, outputs
    item: str
    a: JSON
    b: JSON


def _short(value: Any) -> JSON:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return value


@dataclass(frozen=True)
class _RunFacts:
    """What a comparison reads of one run: its record, and per step name its record, metadata and
    output content hashes (three store calls for the whole run)."""

    run: RunRecord
    steps: dict[str, StepRunRecord]
    metadata: dict[str, dict[str, JSON]]
    outputs: dict[str, dict[str, str | None]]


def _facts(store: MetadataStore, run: RunRecord) -> _RunFacts:
    steps = {s.name: s for s in store.list_step_runs(run.id)}
    ids = [s.id for s in steps.values()]
    metadata = store.get_metadata(EntityKind.STEP_RUN, ids)
    outputs: dict[str, dict[str, str | None]] = {}
    for edge in store.list_step_io(ids):
        if edge.direction is Direction.OUTPUT:
            outputs.setdefault(edge.step_run_id, {})[edge.name] = edge.artifact.content_hash
    return _RunFacts(run, steps, metadata, outputs)


def diff_runs(store: MetadataStore, a_run: RunRecord, b_run: RunRecord) -> list[Difference]:
    """Parameter, code, environment, metric and output-content differences between two runs
    read from ``store`` (``RunView.diff`` calls this)."""
    found: list[Difference] = []
    fa, fb = _facts(store, a_run), _facts(store, b_run)
    a, b = a_run, b_run

    def compare(section: str, left: dict[str, Any], right: dict[str, Any], prefix: str = "") -> None:
        for key in sorted(set(left) | set(right)):
            lv, rv = left.get(key), right.get(key)
            if json.dumps(lv, sort_keys=True, default=str) != json.dumps(rv, sort_keys=True, default=str):
                found.append(Difference(section, prefix + key, _short(lv), _short(rv)))

    compare("parameters", a.parameters, b.parameters, "pipeline ")
    a_steps, b_steps = fa.steps, fb.steps
    for name in sorted(set(a_steps) | set(b_steps)):
        if name not in a_steps or name not in b_steps:
            found.append(Difference("steps", name, name in a_steps, name in b_steps))
            continue
        sa, sb = a_steps[name], b_steps[name]
        compare("parameters", sa.parameters, sb.parameters, f"{name} ")
        compare(
            "code",
            dict((sa.cache_components or {}).get("code") or {}),
            dict((sb.cache_components or {}).get("code") or {}),
            "source of ",
        )
        compare("metrics", fa.metadata.get(sa.id, {}), fb.metadata.get(sb.id, {}), f"{name}.")
        compare("outputs", fa.outputs.get(sa.id, {}), fb.outputs.get(sb.id, {}), f"content of {name}.")
    compare(
        "code",
        {
            "git commit": a.git_sha,
            "git dirty": a.git_dirty,
            "git diff": (a.environment.get("git") or {}).get("diff_hash"),
        },
        {
            "git commit": b.git_sha,
            "git dirty": b.git_dirty,
            "git diff": (b.environment.get("git") or {}).get("diff_hash"),
        },
    )
    compare(
        "environment",
        {"python": a.environment.get("python"), "platform": a.environment.get("platform")},
        {"python": b.environment.get("python"), "platform": b.environment.get("platform")},
    )
    compare("environment", a.environment.get("packages") or {}, b.environment.get("packages") or {}, "package ")
    return found


#: The most runs :func:`side_by_side` compares at once.
MAX_COMPARED = 10


@dataclass(frozen=True)
class ComparedRow:
    """One compared item: its ``section`` (parameters, metrics, outputs, code, environment,
    steps), what it is, one value per run (None where a run has none) and whether they differ."""

    section: str
    item: str
    values: list[JSON]
    differs: bool


@dataclass(frozen=True)
class Comparison:
    """Runs side by side (:func:`side_by_side`): the runs in the order given and one row per item
    any of them has, sections in a fixed order, items sorted within a section."""

    runs: list[RunRecord]
    rows: list[ComparedRow]

    @property
    def differences(self) -> list[ComparedRow]:
        """The rows whose values differ."""
        return [row for row in self.rows if row.differs]


SECTIONS = ("parameters", "metrics", "outputs", "steps", "code", "environment")


def side_by_side(store: MetadataStore, runs: Sequence[RunRecord]) -> Comparison:
    """Parameters (the pipeline's and each step's), metrics (what steps logged), outputs (content
    hashes, short), steps present, code (git, step sources) and environment of 2 to
    :data:`MAX_COMPARED` runs, one row per item: the many-run form of :func:`diff_runs`. Three
    store calls per run.

    Raises:
        PipeledgerError: fewer than 2 or more than :data:`MAX_COMPARED` runs, or a run given twice.
    """
    if not 2 <= len(runs) <= MAX_COMPARED:
        raise PipeledgerError(f"compare 2 to {MAX_COMPARED} runs, not {len(runs)}")
    if len({r.id for r in runs}) != len(runs):
        raise PipeledgerError("a run is given twice: compare distinct runs")
    facts = [_facts(store, run) for run in runs]
    items: dict[tuple[str, str], list[JSON]] = {}

    def put(section: str, item: str, index: int, value: JSON) -> None:
        items.setdefault((section, item), [None] * len(runs))[index] = value

    for index, f in enumerate(facts):
        run = f.run
        for key, value in run.parameters.items():
            put("parameters", f"pipeline {key}", index, value)
        for name, step in f.steps.items():
            put("steps", name, index, step.status.value)
            for key, value in step.parameters.items():
                put("parameters", f"{name} {key}", index, value)
            for key, value in f.metadata.get(step.id, {}).items():
                put("metrics", f"{name}.{key}", index, value)
            for output, digest in f.outputs.get(step.id, {}).items():
                put("outputs", f"{name}.{output}", index, _short(digest))
            for source, digest in dict((step.cache_components or {}).get("code") or {}).items():
                put("code", f"source of {source}", index, _short(digest))
        git = run.environment.get("git") or {}
        put("code", "git commit", index, run.git_sha)
        put("code", "git dirty", index, run.git_dirty)
        put("code", "git diff", index, git.get("diff_hash") if isinstance(git, dict) else None)
        put("environment", "python", index, run.environment.get("python"))
        put("environment", "platform", index, run.environment.get("platform"))
        packages = run.environment.get("packages") or {}
        for package, version in packages.items() if isinstance(packages, dict) else ():
            put("environment", f"package {package}", index, version)
    rows = []
    for (section, item), values in sorted(items.items(), key=lambda kv: (SECTIONS.index(kv[0][0]), kv[0][1])):
        shown = {json.dumps(v, sort_keys=True, default=str) for v in values}
        rows.append(ComparedRow(section, item, values, len(shown) > 1))
    return Comparison(list(runs), rows)
