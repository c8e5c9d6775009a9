"""HTML pictures of the views for notebooks (Jupyter calls ``_repr_html_``).

Kept apart from the views, which only read: a run shows its steps as a table and its DAG
drawn as SVG (:func:`pipeledger.lineage.render.to_svg_fragment`); a step its facts.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeledger.client.views import RunView, StepView


def run_html(run: RunView) -> str:
    """A run's name and status, a table of its steps (status, seconds, outputs) and its DAG."""
    rows = "".join(
        f"<tr><td>{html.escape(s.name)}</td><td>{s.status.value}</td>"
        f"<td>{s.duration.total_seconds() if s.duration else ''}</td>"
        f"<td>{html.escape(', '.join(s.outputs))}</td></tr>"
        for s in run.steps.values()
    )
    return (
        f"<div><b>{html.escape(run.pipeline_name)}</b> run <b>{html.escape(run.name)}</b> "
        f"{run.status.value}<table><tr><th>step</th><th>status</th><th>seconds</th><th>outputs</th></tr>"
        f"{rows}</table>{run.graph()._repr_html_()}</div>"
    )


def step_html(step: StepView) -> str:
    """A table of a step run's facts: status, run, duration, parameters, inputs, outputs,
    metadata and why it hit or missed the cache."""
    facts = {
        "step": step.name,
        "status": step.status.value,
        "run": step.run.name,
        "duration (s)": step.duration.total_seconds() if step.duration else "",
        "parameters": step.parameters,
        "inputs": ", ".join(step.inputs),
        "outputs": ", ".join(step.outputs),
        "metadata": step.metadata,
        "cache": step.cache_explanation,
    }
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    return f"<table>{rows}</table>"
