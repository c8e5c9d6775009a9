"""``/ui/runs``: the runs of every pipeline as a table, filtered with the search language, sorted by
any sortable column, paged with page tokens; ``/ui/api/runs/live``: the changing values of some
runs as JSON, for the page's live-update script.

View state, all in the URL: ``filter`` (a search filter, ``docs/searching.md``), ``sort`` (a column:
``status``, ``run``, ``pipeline``, ``started``, ``duration``, ``params.NAME`` or ``metrics.KEY``) and
``dir`` (``asc``/``desc``), ``limit`` (rows per page), ``page`` (the page token) and ``prev`` (the
tokens of the pages before it, for "Previous"), ``param``/``metric`` (the chosen columns; with
neither, the first few the page's runs have are shown; ``cols=chosen`` marks an explicit choice).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from pipeledger.client.client import quote
from pipeledger.exceptions import PipeledgerError, QueryError
from pipeledger.ui.app import UiReader, no_store, render, ui_reader
from pipeledger.ui.runs_data import AUTO_COLUMNS, DEFAULT_LIMIT, MAX_LIMIT, SORTABLE, param_names_of, table_of

router = APIRouter()

#: A stand-in for "the first page" in the ``prev`` list (whose token is none).
FIRST = "-"
#: Most earlier page tokens kept in the URL for "Previous" (older ones: back to "First").
MAX_PREVIOUS = 50


def order_of(sort: str, direction: str) -> tuple[str, str, str]:
    """The column, direction and search ``order_by`` of the URL's ``sort`` and ``dir``."""
    direction = "asc" if direction == "asc" else "desc"
    if sort in SORTABLE:
        return sort, direction, f"{SORTABLE[sort]} {direction}"
    if sort.startswith(("params.", "metrics.")) and len(sort.split(".", 1)[1]) > 0:
        name = sort.split(".", 1)[1]
        prefix = sort.split(".", 1)[0]
        return sort, direction, f"{prefix}.`{name.replace('`', '``')}` {direction}"
    return "started", "desc", "started desc"


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    reader: UiReader = Depends(ui_reader),
    filter: str = "",
    sort: str = "started",
    dir: str = "desc",
    page: str | None = None,
    prev: list[str] = Query(default_factory=list),
    limit: int = DEFAULT_LIMIT,
    param: list[str] = Query(default_factory=list),
    metric: list[str] = Query(default_factory=list),
    cols: str = "",
) -> HTMLResponse:
    """The runs table (one page of runs, never all)."""
    column, direction, order_by = order_of(sort, dir)
    limit = min(max(limit, 1), MAX_LIMIT)
    prev = prev[-MAX_PREVIOUS:]
    error = None
    runs: list[Any] = []
    next_token = None
    try:
        found = reader.client.search_runs(filter.strip() or None, order_by=order_by, limit=limit, page_token=page)
        runs, next_token = found.items, found.next_page_token
    except QueryError as exc:
        error = str(exc)
    except PipeledgerError as exc:  # e.g. a store that cannot search: say so, keep the page
        error = str(exc)
    chosen = cols == "chosen" or bool(param) or bool(metric)
    params = list(param) if chosen else param_names_of(runs)[:AUTO_COLUMNS]
    table = table_of(reader.client, runs)
    metrics = list(metric) if chosen else table.metric_keys[:AUTO_COLUMNS]
    context = {
        "nav": "runs",
        "filter": filter,
        "error": error,
        "rows": table.rows,
        "params": params,
        "metrics": metrics,
        "offered_params": sorted({*param_names_of(runs), *params}),
        "offered_metrics": sorted({*table.metric_keys, *metrics}),
        "sort": column,
        "dir": direction,
        "sortable": [*SORTABLE, *(f"params.{p}" for p in params), *(f"metrics.{m}" for m in metrics)],
        "limit": limit,
        "page": page,
        "prev": prev,
        "next_token": next_token,
        "first": FIRST,
        "any_running": any(r.status.value == "running" for r in table.rows),
    }
    return render(request, "runs.html", context, status_code=400 if error else 200)


@router.get("/api/runs/live")
def runs_live(reader: UiReader = Depends(ui_reader), ids: list[str] = Query(default_factory=list)) -> JSONResponse:
    """The changing values (status, duration, step counts) of the runs ``ids``: what the runs
    table's script polls while some of its runs run."""
    wanted = [i for i in ids if i][:MAX_LIMIT]
    if not wanted:
        return JSONResponse({"runs": []})
    found = reader.client.search_runs(f"id in ({', '.join(quote(i) for i in wanted)})", limit=len(wanted))
    table = table_of(reader.client, found.items)
    response = JSONResponse({"runs": [row.live() for row in table.rows]})
    no_store(response)
    return response
