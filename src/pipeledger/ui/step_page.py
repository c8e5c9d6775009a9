"""``/ui/steps/{step_id}``: one step run: status, parameters, config, code fingerprint, metadata,
the cache explanation in words (with a link to the step run a cached result came from), inputs and
outputs with small previews, and its logs, paged and searchable.

View state in the URL: ``log_offset`` (the byte the logs page starts at; ``last`` for the end) and
``log_q`` (text searched in the logs). Reads one step run, its run, its edges and metadata, at
most :data:`MAX_PREVIEWS` bounded artifact previews and one bounded window of logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from pipeledger.client import ArtifactView, StepView
from pipeledger.exceptions import NotFoundError, PipeledgerError
from pipeledger.ui import logs
from pipeledger.ui.app import UiReader, error_page, render, ui_reader

router = APIRouter()

#: Most artifacts previewed on one step page (the others link to their own page).
MAX_PREVIEWS = 6
#: Characters of a preview shown on a step page.
PREVIEW_CHARS = 600


@dataclass(frozen=True)
class Item:
    """An input or output on the step page: its name, the artifact, a short preview (or why none)."""

    name: str
    artifact: ArtifactView
    preview: str | None


def short_preview(artifact: ArtifactView) -> str:
    """A few lines saying what ``artifact`` holds (bounded: the artifact store's preview)."""
    try:
        summary: dict[str, Any] = dict(artifact.preview())
    except PipeledgerError as exc:
        return f"(no preview: {exc})"
    preview: dict[str, Any] = dict(summary.get("preview") or {})
    kind = preview.get("kind")
    more = " …" if preview.get("truncated") else ""
    if kind in ("json", "bytes") and preview.get("text") is not None:
        text = str(preview["text"]) + more
    elif kind == "bytes":
        text = f"hex {preview.get('hex', '')}{more}"
    elif kind == "array":
        text = f"shape {tuple(preview.get('shape') or ())}, dtype {preview.get('dtype')}"
    elif kind == "table":
        columns = preview.get("columns") or {}
        names = ", ".join(f"{n} {t}" for n, t in columns.items()) if isinstance(columns, dict) else str(columns)
        text = f"{preview.get('rows')} rows; columns: {names}"
    elif kind == "error":
        text = f"(no preview: {preview.get('error')})"
    else:
        text = "(not previewed: its files are loaded only by read())"
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


def items(artifacts: dict[str, ArtifactView], budget: list[int]) -> list[Item]:
    """The inputs or outputs to show, previewing while ``budget[0]`` previews are left."""
    shown = []
    for name, artifact in artifacts.items():
        preview = None
        if budget[0] > 0:
            budget[0] -= 1
            preview = short_preview(artifact)
        shown.append(Item(name, artifact, preview))
    return shown


def log_view(step: StepView, offset: str, query: str) -> dict[str, Any]:
    """The logs part of the page: a page at ``offset`` (or the last page), or the search of ``query``."""
    uri = step.record.logs_uri
    if not uri:
        if step.is_cached:
            reason = "A cached step does not run: the logs are those of the step run that computed its outputs."
        elif step.end_time is None:
            reason = "No logs yet: a step's logs are stored when it ends."
        else:
            reason = "This step printed nothing."
        return {"available": False, "reason": reason}
    try:
        if query:
            return {"available": True, "search": logs.search(uri, query), "query": query}
        if offset == "last":
            page = logs.read_page(uri, 0)
            page = logs.read_page(uri, page.last) if page.next is not None else page
        else:
            page = logs.read_page(uri, int(offset) if offset.isdigit() else 0)
    except PipeledgerError as exc:
        return {"available": False, "reason": f"The logs cannot be read: {exc}"}
    return {"available": True, "page": page, "query": ""}


@router.get("/steps/{step_id}", response_class=HTMLResponse)
def step_page(
    request: Request,
    step_id: str,
    reader: UiReader = Depends(ui_reader),
    log_offset: str = "0",
    log_q: str = "",
) -> HTMLResponse:
    """A step run's page."""
    try:
        step = reader.client.get_step_run(step_id)
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    cached_from = None
    if step.record.cached_from_id is not None:
        try:
            cached_from = step.cached_from
        except NotFoundError:  # the original run was deleted
            cached_from = None
    budget = [MAX_PREVIEWS]
    context = {
        "nav": "runs",
        "step": step,
        "run": step.run,
        "cached_from": cached_from,
        "inputs": items(dict(step.inputs), budget),
        "outputs": items(dict(step.outputs), budget),
        "logs": log_view(step, log_offset.strip(), log_q.strip()[:200]),
        "log_q": log_q,
    }
    return render(request, "step.html", context)
