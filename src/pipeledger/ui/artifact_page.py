"""``/ui/artifacts/{id}``: an artifact (type, URI, size, hash, producer, consumers), a bounded
preview, downloads and the lineage explorer.

View state, all in the URL: ``depth`` (steps around the artifact the explorer reads first, 1 by
default), ``expand`` (repeated: the nodes whose neighbours were added, in the order they were
clicked; clicking an expanded node again removes it), ``view`` (``auto``: the full graph up to
``limit`` nodes, the summary past it; ``full``; ``summary``) and ``limit``.

Other routes: ``.../lineage`` (the explorer alone, the fragment ``explore.js`` swaps in),
``.../lineage.{dot,svg,json,openlineage}`` (exports of the explored graph: without expansions,
what ``pipeledger lineage ID --both --depth N --format ...`` writes), ``.../files/{name}`` (one
file, streamed), ``.../download`` (every file as a streamed tar) and ``.../image`` (a raster
image's bytes, for the preview's ``<img>``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from pipeledger.artifacts.download import artifact_file_sizes, iter_file, iter_tar
from pipeledger.exceptions import ArtifactNotFoundError, NotFoundError, PipeledgerError
from pipeledger.lineage.explorer import MAX_DEPTH, MAX_EXPANDED, neighbourhood, summary
from pipeledger.lineage.graph import LineageGraph, LineageNode
from pipeledger.lineage.render import render_graphviz
from pipeledger.models import ArtifactRecord
from pipeledger.ui.app import SECURITY_HEADERS, UiReader, error_page, render, ui_reader, url_with
from pipeledger.ui.lineage_svg import explorer_svg

router = APIRouter()

#: Nodes drawn one by one at most in the ``auto`` view; past it the explorer shows the summary.
DEFAULT_NODE_LIMIT = 60
MAX_NODE_LIMIT = 1000
#: The largest image the preview shows (larger ones are downloaded).
MAX_IMAGE_BYTES = 16 << 20
#: Consumers listed on the page at most (the explorer holds them all).
MAX_LISTED = 10
EXPORTS = {
    "dot": "text/vnd.graphviz; charset=utf-8",
    "svg": "image/svg+xml",
    "json": "application/json",
    "openlineage": "application/json",
}
_HEX = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ExplorerState:
    """The explorer's view state, read from the URL (bounded)."""

    depth: int
    expand: list[str]
    view: str
    limit: int


def state_of(depth: int, expand: list[str], view: str, limit: int) -> ExplorerState:
    """The state with every value in range: ``depth`` 0..MAX_DEPTH, at most MAX_EXPANDED ids (only
    well-formed ones), ``view`` one of auto/full/summary, ``limit`` 1..MAX_NODE_LIMIT."""
    ids = [i for i in dict.fromkeys(expand) if _HEX.match(i)][:MAX_EXPANDED]
    return ExplorerState(
        min(max(depth, 0), MAX_DEPTH),
        ids,
        view if view in ("auto", "full", "summary") else "auto",
        min(max(limit, 1), MAX_NODE_LIMIT),
    )


def _artifact(reader: UiReader, artifact_id: str) -> ArtifactRecord:
    return reader.store.get_artifact(artifact_id)


def explorer_context(request: Request, reader: UiReader, artifact_id: str, state: ExplorerState) -> dict[str, Any]:
    """What ``lineage_explorer.html`` draws: the picture, the node table, the counts and links."""
    base = f"/ui/artifacts/{artifact_id}"
    graph = neighbourhood(reader.store, artifact_id, state.depth, state.expand)
    summarised = state.view == "summary" or (state.view == "auto" and len(graph) > state.limit)
    shown = summary(graph) if summarised else graph

    def href(node: LineageNode) -> str | None:
        if summarised:
            return url_with(request, base, view="full") if node.id != graph.root else None
        if node.id == graph.root:
            return None
        expanded = [i for i in state.expand if i != node.id]
        if node.id not in state.expand:
            expanded.append(node.id)
        return url_with(request, base, expand=expanded)

    return {
        "artifact_id": artifact_id,
        "state": state,
        "graph": graph,
        "shown": shown,
        "summarised": summarised,
        "svg": explorer_svg(shown, href, set() if summarised else set(state.expand)),
        "rows": _rows(shown, summarised),
        "base": base,
        "deeper": url_with(request, base, depth=state.depth + 1) if state.depth < MAX_DEPTH else None,
        "shallower": url_with(request, base, depth=state.depth - 1) if state.depth > 0 else None,
        "full_link": url_with(request, base, view="full"),
        "summary_link": url_with(request, base, view="summary"),
        "auto_link": url_with(request, base, view=None),
        "reset_link": url_with(request, base, expand=None, depth=None, view=None),
        "exports": {fmt: url_with(request, f"{base}/lineage.{fmt}") for fmt in EXPORTS},
        "max_expanded": MAX_EXPANDED,
    }


def _rows(graph: LineageGraph, summarised: bool) -> list[dict[str, Any]]:
    rows = []
    for node in sorted(graph.nodes, key=lambda n: (n.kind, n.name, n.id)):
        a = node.attributes
        rows.append(
            {
                "id": node.id,
                "kind": node.kind,
                "name": node.name,
                "root": node.id == graph.root,
                "count": a.get("count"),
                "statuses": a.get("statuses"),
                "status": a.get("status"),
                "run": a.get("run"),
                "type": a.get("type"),
                "group": summarised and "count" in a,
            }
        )
    return rows


def _consumers(graph: LineageGraph, artifact_id: str) -> tuple[list[LineageNode], list[LineageNode]]:
    """The step runs that read the artifact, and the cached ones that reused it."""
    consumed = [graph.node(e.target) for e in graph.edges if e.source == artifact_id and e.kind == "consumed"]
    reused = [graph.node(e.source) for e in graph.edges if e.target == artifact_id and e.kind == "reused"]

    def in_order(found: list[LineageNode]) -> list[LineageNode]:
        unique = {n.id: n for n in found}.values()
        return sorted(unique, key=lambda n: (str(n.attributes.get("start_time") or ""), n.id))

    return in_order(consumed), in_order(reused)


def _preview(reader: UiReader, artifact_id: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return dict(reader.client.get_artifact(artifact_id).preview()), None
    except (ArtifactNotFoundError, PipeledgerError) as exc:
        return None, str(exc)


@router.get("/artifacts/{artifact_id}", response_class=HTMLResponse)
def artifact_page(
    request: Request,
    artifact_id: str,
    reader: UiReader = Depends(ui_reader),
    depth: int = 1,
    expand: list[str] = Query(default_factory=list),
    view: str = "auto",
    limit: int = DEFAULT_NODE_LIMIT,
) -> HTMLResponse:
    """The artifact's page."""
    try:
        record = _artifact(reader, artifact_id)
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    artifact = reader.client.get_artifact(record.id)
    producer = artifact.producer
    explorer = explorer_context(request, reader, record.id, state_of(depth, expand, view, limit))
    around = neighbourhood(reader.store, record.id, 1) if explorer["state"].depth < 1 else explorer["graph"]
    consumers, reusers = _consumers(around, record.id)
    preview, preview_error = _preview(reader, record.id)
    files = dict(preview["files"]) if preview else {}
    image = (
        preview is not None
        and (preview.get("preview") or {}).get("media_type")
        and record.size <= MAX_IMAGE_BYTES
        and len(files) == 1
    )
    context = {
        "artifact": artifact,
        "producer": producer,
        "producer_run": producer.run.name if producer else None,
        "consumers": consumers[:MAX_LISTED],
        "more_consumers": max(len(consumers) - MAX_LISTED, 0),
        "reusers": reusers[:MAX_LISTED],
        "more_reusers": max(len(reusers) - MAX_LISTED, 0),
        "preview": (preview or {}).get("preview"),
        "preview_error": preview_error,
        "preview_table": _table(preview),
        "files": files,
        "image": bool(image),
        "metadata": artifact.metadata,
        "tags": artifact.tags,
        **explorer,
    }
    return render(request, "artifact.html", context)


def _table(preview: dict[str, Any] | None) -> dict[str, Any] | None:
    """A table preview's columns and cells as text (JSON for non-strings)."""
    shown = (preview or {}).get("preview") or {}
    if shown.get("kind") != "table":
        return None
    columns = list(shown.get("columns") or {})
    cells = [
        [v if isinstance(v := row.get(c), str) else json.dumps(v, ensure_ascii=False, default=str) for c in columns]
        for row in shown.get("head") or []
    ]
    return {"columns": shown.get("columns") or {}, "names": columns, "cells": cells, "rows": shown.get("rows")}


@router.get("/artifacts/{artifact_id}/lineage", response_class=HTMLResponse)
def lineage_fragment(
    request: Request,
    artifact_id: str,
    reader: UiReader = Depends(ui_reader),
    depth: int = 1,
    expand: list[str] = Query(default_factory=list),
    view: str = "auto",
    limit: int = DEFAULT_NODE_LIMIT,
) -> HTMLResponse:
    """The explorer alone (an HTML fragment), for ``explore.js``."""
    try:
        record = _artifact(reader, artifact_id)
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    state = state_of(depth, expand, view, limit)
    return render(request, "lineage_explorer.html", explorer_context(request, reader, record.id, state))


@router.get("/artifacts/{artifact_id}/lineage.{fmt}")
def lineage_export(
    request: Request,
    artifact_id: str,
    fmt: str,
    reader: UiReader = Depends(ui_reader),
    depth: int = 1,
    expand: list[str] = Query(default_factory=list),
) -> Response:
    """The explored graph (not summarised) as DOT, SVG (Graphviz), JSON or OpenLineage events."""
    if fmt not in EXPORTS:
        return error_page(request, 404, f"no export {fmt!r}: use one of {', '.join(EXPORTS)}")
    try:
        record = _artifact(reader, artifact_id)
        state = state_of(depth, expand, "full", MAX_NODE_LIMIT)
        graph = neighbourhood(reader.store, record.id, state.depth, state.expand)
        if fmt == "dot":
            body: str | bytes = graph.to_dot()
        elif fmt == "svg":
            body = render_graphviz(graph.to_dot(), "svg")
        elif fmt == "json":
            body = graph.to_json() + "\n"
        else:
            body = json.dumps(graph.to_openlineage(), indent=2) + "\n"
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    except PipeledgerError as exc:  # e.g. Graphviz missing: the message says how to install it
        return error_page(request, 503, str(exc))
    name = f"lineage-{record.id}.{'json' if fmt == 'openlineage' else fmt}"
    return Response(body, media_type=EXPORTS[fmt], headers=_attachment(name))


def _attachment(name: str) -> dict[str, str]:
    return {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}


@router.get("/artifacts/{artifact_id}/files/{name:path}")
def download_file(request: Request, artifact_id: str, name: str, reader: UiReader = Depends(ui_reader)) -> Response:
    """One of the artifact's files, streamed (only a name its listing holds)."""
    try:
        record = _artifact(reader, artifact_id)
        sizes = artifact_file_sizes(record)
        chunks = iter_file(record, name, sizes)
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    except PipeledgerError as exc:
        return error_page(request, 503, str(exc))
    shown = re.sub(r"[^A-Za-z0-9._-]", "_", name.rsplit("/", 1)[-1]) or "file"
    headers = {**_attachment(shown), "Content-Length": str(sizes[name])}
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


@router.get("/artifacts/{artifact_id}/download")
def download_all(request: Request, artifact_id: str, reader: UiReader = Depends(ui_reader)) -> Response:
    """Every file of the artifact as a tar, streamed."""
    try:
        record = _artifact(reader, artifact_id)
        artifact_file_sizes(record)  # a missing artifact is an error page, not a broken stream
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    except PipeledgerError as exc:
        return error_page(request, 503, str(exc))
    return StreamingResponse(
        iter_tar(record, f"artifact-{record.id}"),
        media_type="application/x-tar",
        headers=_attachment(f"artifact-{record.id}.tar"),
    )


@router.get("/artifacts/{artifact_id}/image")
def preview_image(request: Request, artifact_id: str, reader: UiReader = Depends(ui_reader)) -> Response:
    """The bytes of an artifact holding one raster image (PNG, JPEG, GIF, WebP; never SVG), up to
    :data:`MAX_IMAGE_BYTES`, with its media type."""
    try:
        record = _artifact(reader, artifact_id)
        preview, error = _preview(reader, record.id)
        media_type = ((preview or {}).get("preview") or {}).get("media_type")
        files = list((preview or {}).get("files") or {})
        if error or not media_type or len(files) != 1 or record.size > MAX_IMAGE_BYTES:
            return error_page(request, 404, f"artifact {record.id} holds no image small enough to show")
        chunks = iter_file(record, files[0])
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    return StreamingResponse(chunks, media_type=str(media_type), headers=dict(SECURITY_HEADERS))
