"""A run as one self-contained HTML file (``pipeledger ui export RUN --out DIR``), for a report or
a CI artifact, like Metaflow's cards.

``DIR/index.html`` holds everything inline: the stylesheet, the DAG (Graphviz's SVG, or the built-in
layout without Graphviz), the timeline, the steps with their parameters, metrics, outputs and
cache explanations, the run's parameters, git and environment, and a summary of its artifacts.
It has no script and no link outside itself (nodes and bars link to anchors in the page), so it
opens from disk (``file://``) and offline. Logs, the stack's configuration and artifact contents are
left out: an export is shared, and those can hold secrets.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeledger import __version__
from pipeledger.client import RunView
from pipeledger.exceptions import PipeledgerError
from pipeledger.lineage.graph import LineageGraph, LineageNode
from pipeledger.lineage.render import render_graphviz, to_dot, to_svg_fragment
from pipeledger.permissions import PRIVATE, file_mode, set_mode
from pipeledger.ui.app import ENVIRONMENT, HERE
from pipeledger.ui.gantt import Bar, gantt_svg

#: The file an export writes in its directory.
INDEX = "index.html"
#: Above this many nodes the DAG is drawn with the built-in layout (Graphviz would be slow).
GRAPHVIZ_MAX_NODES = 400
#: The longest error message shown per step (the rest is cut; tracebacks are not exported).
MAX_ERROR = 2000

_PROLOG = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


class ExportError(PipeledgerError):
    """The export cannot be written where asked (the message says why and what to do)."""


def anchor(kind: str, node_id: str) -> str:
    """The id of a step's or an artifact's section in the exported page."""
    return f"{kind}-{node_id}"


def _link(node: LineageNode) -> str | None:
    if node.id.startswith("not-run:"):
        return None
    return f"#{anchor(node.kind, node.id)}"


def dag(graph: LineageGraph) -> str:
    """The DAG as inline SVG, its nodes linking to their sections in the page."""
    if len(graph) <= GRAPHVIZ_MAX_NODES:
        try:
            drawn = render_graphviz(to_dot(graph, links=_link), "svg").decode("utf-8")
            return _COMMENT.sub("", _PROLOG.sub("", drawn, count=1))
        except PipeledgerError:
            pass
    return to_svg_fragment(graph)


def _stylesheet() -> str:
    return "\n".join((HERE / "static" / name).read_text(encoding="utf-8") for name in ("ui.css", "explore.css"))


def context_of(run: RunView, now: datetime | None = None) -> dict[str, Any]:
    """What ``export.html`` shows of ``run``."""
    now = now or datetime.now(timezone.utc)
    steps = []
    artifacts: dict[str, dict[str, Any]] = {}
    metrics: dict[str, Any] = {}
    for step in run.steps.values():
        outputs = dict(step.outputs)
        for name, artifact in outputs.items():
            artifacts.setdefault(
                artifact.id,
                {"id": artifact.id, "name": f"{step.name}.{name}", "artifact": artifact, "reused": step.is_cached},
            )
        for key, value in step.metadata.items():
            metrics[f"{step.name}.{key}"] = value
        error = step.error_message or ""
        steps.append(
            {
                "view": step,
                "anchor": anchor("step", step.id),
                "inputs": {n: (a, anchor("artifact", a.id)) for n, a in step.inputs.items()},
                "outputs": {n: (a, anchor("artifact", a.id)) for n, a in outputs.items()},
                "error": error[:MAX_ERROR] + ("…" if len(error) > MAX_ERROR else ""),
                "cache": step.cache_explanation if step.status.value in ("cached", "completed") else None,
            }
        )
    bars = [
        Bar(s.name, s.status.value, s.start_time, s.end_time, f"#{anchor('step', s.id)}") for s in run.steps.values()
    ]
    env = dict(run.environment)
    packages = env.pop("packages", {})
    env.pop("git", None)
    return {
        "run": run,
        "steps": steps,
        "artifacts": list(artifacts.values()),
        "metrics": metrics,
        "environment": env,
        "packages": packages if isinstance(packages, dict) else {},
        "dag": dag(run.graph()),
        "gantt": gantt_svg(bars, run.start_time, now) if bars else "",
        "css": _stylesheet(),
        "exported_at": now,
        "version": __version__,
    }


def render_export(run: RunView, now: datetime | None = None) -> str:
    """The exported page of ``run`` (one HTML document)."""
    return ENVIRONMENT.get_template("export.html").render(**context_of(run, now))


def write_export(run: RunView, out: Path, force: bool = False) -> Path:
    """Write ``run``'s page to ``out/index.html`` (creating ``out``); the file is private (0600).

    Raises:
        ExportError: ``out`` is a file, or a directory that is not empty (unless ``force``: then
            only ``index.html`` is replaced), or cannot be created or written.
    """
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a directory: give --out a directory (new or empty)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} is not empty: give a new or empty directory, or --force to replace its {INDEX}")
    page = render_export(run)
    target = out / INDEX
    partial = out / f".{INDEX}.{os.getpid()}.tmp"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(partial, "x", encoding="utf-8") as sink:  # created private, then filled
            set_mode(partial, file_mode(PRIVATE))
            sink.write(page)
        os.replace(partial, target)
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}; choose a directory you can write") from None
    finally:
        if partial.exists():
            partial.unlink()
    return target
