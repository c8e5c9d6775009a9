"""Comparing runs across time: metric histories and the differences between two runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeledger.models import JSON, MetricPoint

if TYPE_CHECKING:
    from pipeledger.client.views import RunView


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


def diff_runs(a: RunView, b: RunView) -> list[Difference]:
    """Parameter, code, environment, metric and output-content differences between two runs."""
    found: list[Difference] = []

    def compare(section: str, left: dict[str, Any], right: dict[str, Any], prefix: str = "") -> None:
        for key in sorted(set(left) | set(right)):
            lv, rv = left.get(key), right.get(key)
            if json.dumps(lv, sort_keys=True, default=str) != json.dumps(rv, sort_keys=True, default=str):
                found.append(Difference(section, prefix + key, _short(lv), _short(rv)))

    compare("parameters", a.parameters, b.parameters, "pipeline ")
    a_steps, b_steps = a.steps, b.steps
    for name in sorted(set(a_steps) | set(b_steps)):
        if name not in a_steps or name not in b_steps:
            found.append(Difference("steps", name, name in a_steps, name in b_steps))
            continue
        compare("parameters", a_steps[name].parameters, b_steps[name].parameters, f"{name} ")
        compare(
            "code",
            dict(a_steps[name].cache_components.get("code") or {}),
            dict(b_steps[name].cache_components.get("code") or {}),
            "source of ",
        )
        compare("metrics", a_steps[name].metadata, b_steps[name].metadata, f"{name}.")
        compare(
            "outputs",
            {k: v.content_hash for k, v in a_steps[name].outputs.items()},
            {k: v.content_hash for k, v in b_steps[name].outputs.items()},
            f"content of {name}.",
        )
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
