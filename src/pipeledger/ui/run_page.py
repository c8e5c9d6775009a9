"""``/ui/runs/{run}``: one run (by name or id): its DAG drawn by Graphviz with steps coloured by
status and cached steps dashed, a timeline of its steps, its steps, parameters, git, environment
and how to rerun it. While it runs, its script polls ``/ui/api/runs/{id}/live`` (status, steps,
the tail of the latest logs) and reloads the pictures from ``/ui/api/runs/{id}/figures``.

Reads one run: its record, its step runs, their edges and metadata (a bounded number of
statements), and at most :data:`pipeledger.ui.logs.TAIL_BYTES` of logs.
"""

from __future__ import annotations

import html
import re
import shlex
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse

from pipeledger.client import RunView
from pipeledger.exceptions import NotFoundError, PipeledgerError
from pipeledger.lineage.graph import LineageGraph, LineageNode
from pipeledger.lineage.render import render_graphviz, to_dot, to_svg_fragment
from pipeledger.ui import logs
from pipeledger.ui.app import ENVIRONMENT, UiReader, error_page, no_store, render, ui_reader
from pipeledger.ui.gantt import Bar, gantt_svg
from pipeledger.ui.runs_data import elapsed

router = APIRouter()

#: A DAG with more nodes than this is drawn with the built-in layout (Graphviz would be slow).
GRAPHVIZ_MAX_NODES = 400


def node_link(node: LineageNode) -> str | None:
    """The UI page of a node of a run's graph (steps that did not run have none)."""
    if node.kind == "step" and not node.id.startswith("not-run:"):
        return f"/ui/steps/{node.id}"
    if node.kind == "artifact":
        return f"/ui/artifacts/{node.id}"
    return None


_PROLOG = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def dag_svg(graph: LineageGraph) -> str:
    """The run's DAG as inline SVG: Graphviz's drawing (nodes linking to their pages), or the
    built-in layout when Graphviz is missing or the graph is too big for it."""
    if len(graph.nodes) <= GRAPHVIZ_MAX_NODES:
        try:
            drawn = render_graphviz(to_dot(graph, links=node_link), "svg").decode("utf-8")
            return _COMMENT.sub("", _PROLOG.sub("", drawn, count=1))
        except PipeledgerError:
            pass  # no Graphviz: the built-in layout
    return to_svg_fragment(graph)


def bars_of(run: RunView) -> list[Bar]:
    """The timeline bars of ``run``'s steps."""
    return [
        Bar(step.name, step.status.value, step.start_time, step.end_time, f"/ui/steps/{step.id}")
        for step in run.steps.values()
    ]


def figures(run: RunView) -> dict[str, str]:
    """The run's pictures: ``dag`` and ``gantt`` (SVG text, every label escaped)."""
    now = datetime.now(timezone.utc)
    return {"dag": dag_svg(run.graph()), "gantt": gantt_svg(bars_of(run), run.start_time, now)}


def rerun_commands(run: RunView) -> dict[str, str]:
    """How to run ``run`` again: shell commands and Python."""
    name = shlex.quote(run.name)
    commands = {
        "check": f"pipeledger run rerun {name} --dry-run",
        "rerun": f"pipeledger run rerun {name}",
        "python": f"import pipeledger\npipeledger.rerun(pipeledger.Client().get_run({run.name!r}))",
    }
    if run.git_sha:
        commands["checkout"] = f"git checkout {shlex.quote(run.git_sha)}"
    return commands


def latest_logs(run: RunView) -> tuple[str, str] | None:
    """The step name and the tail of the logs of the step of ``run`` that ended last with logs."""
    ended = [s for s in run.steps.values() if s.end_time is not None and s.record.logs_uri]
    if not ended:
        return None
    step = max(ended, key=lambda s: s.end_time or s.start_time)
    assert step.record.logs_uri is not None
    try:
        return step.name, logs.tail(step.record.logs_uri)
    except PipeledgerError as exc:
        return step.name, f"(logs unavailable: {exc})"


def live_state(run: RunView) -> dict[str, Any]:
    """What the run page's script updates: status, progress, steps, the logs' tail."""
    steps = list(run.steps.values())
    configured = run.config.get("steps")
    total = max(len(configured) if isinstance(configured, dict) else 0, len(steps))
    tail = latest_logs(run)
    return {
        "id": run.id,
        "status": run.status.value,
        "duration": (d.total_seconds() if (d := elapsed(run)) is not None else None),
        "steps_total": total,
        "steps_done": sum(s.status.value in ("completed", "cached", "skipped") for s in steps),
        "steps": [
            {
                "id": s.id,
                "name": s.name,
                "status": s.status.value,
                "duration": (s.duration.total_seconds() if s.duration is not None else None),
            }
            for s in steps
        ],
        "log_step": tail[0] if tail else None,
        "log_tail": tail[1] if tail else None,
    }


def environment_parts(run: RunView) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's environment without its package list, and the package list."""
    env = dict(run.environment)
    packages = env.pop("packages", {})
    return env, packages if isinstance(packages, dict) else {"packages": packages}


@router.get("/runs/{run:path}", response_class=HTMLResponse)
def run_page(request: Request, run: str, reader: UiReader = Depends(ui_reader)) -> HTMLResponse:
    """A run's page."""
    try:
        view = reader.client.get_run(run)
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    env, packages = environment_parts(view)
    state = live_state(view)
    context = {
        "nav": "runs",
        "run": view,
        "steps": list(view.steps.values()),
        "figures": figures(view),
        "rerun": rerun_commands(view),
        "environment": env,
        "packages": packages,
        "live": state,
        "duration": elapsed(view),
    }
    return render(request, "run.html", context)


@router.get("/api/runs/{run_id}/live")
def run_live(run_id: str, reader: UiReader = Depends(ui_reader)) -> JSONResponse:
    """The run's changing state as JSON (404 for an unknown run)."""
    try:
        view = reader.client.get_run(run_id)
    except NotFoundError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    response = JSONResponse(live_state(view))
    no_store(response)
    return response


@router.get("/api/runs/{run_id}/figures", response_class=HTMLResponse)
def run_figures(run_id: str, reader: UiReader = Depends(ui_reader)) -> HTMLResponse:
    """The run's DAG and timeline as an HTML fragment (what the page's script swaps in)."""
    try:
        view = reader.client.get_run(run_id)
    except NotFoundError as exc:
        return HTMLResponse(f'<p class="error">{html.escape(str(exc))}</p>', status_code=404)
    fragment = ENVIRONMENT.get_template("run_figures.html").render(figures=figures(view), run=view)
    return HTMLResponse(fragment, headers={"Cache-Control": "no-store"})
