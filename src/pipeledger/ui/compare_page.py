"""``/ui/compare?runs=A&runs=B``: 2 to 10 runs side by side (``run diff`` as a page), and
``/ui/pipelines/{name}/metrics``: a pipeline's metrics over its runs as an SVG chart.

View state in the URL: ``runs`` (repeated, names or ids, in the order shown; one value holding
commas that names no run is read as a comma-separated list), ``only`` (``differences`` hides the
rows that are equal), ``section`` (repeated: the sections shown). The metrics page: ``keys``
(repeated: the metrics drawn; default all numeric ones) and ``last`` (only the latest N runs).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from pipeledger.client import RunView
from pipeledger.comparison import MAX_COMPARED, SECTIONS, metric_history, side_by_side
from pipeledger.exceptions import NotFoundError, PipeledgerError
from pipeledger.models import RunRecord
from pipeledger.ui.app import UiReader, error_page, render, ui_reader, url_with
from pipeledger.ui.metric_chart import metric_chart, numeric_columns

router = APIRouter()

#: Recent runs offered by the picker.
PICKER_RUNS = 30
#: Runs the metric chart draws at most (the latest).
MAX_CHART_RUNS = 500


def run_names(values: list[str], reader: UiReader) -> list[str]:
    """The runs named in the URL, in order and once each: every value, and a value holding commas
    that is not itself a run's name read as a comma-separated list."""
    names: list[str] = []
    for value in (v.strip() for v in values):
        if not value:
            continue
        if "," in value:
            try:
                reader.store.get_run(value)
            except NotFoundError:
                names.extend(n.strip() for n in value.split(",") if n.strip())
                continue
        names.append(value)
    return list(dict.fromkeys(names))


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    reader: UiReader = Depends(ui_reader),
    runs: list[str] = Query(default_factory=list),
    only: str = "",
    section: list[str] = Query(default_factory=list),
) -> HTMLResponse:
    """The comparison of the chosen runs, or the picker when fewer than two are chosen."""
    names = run_names(runs, reader)
    error = None
    records: list[RunRecord] = []
    missing = []
    for name in names[: MAX_COMPARED + 1]:
        try:
            records.append(reader.store.get_run(name))
        except NotFoundError:
            missing.append(name)
    if missing:
        error = f"no run named {', '.join(repr(m) for m in missing)}: pick runs below"
    elif len(names) > MAX_COMPARED:
        error = f"compare at most {MAX_COMPARED} runs, not {len(names)}: pick fewer"
        records = []
    comparison = None
    if not error and len(records) >= 2:
        try:
            comparison = side_by_side(reader.store, records)
        except PipeledgerError as exc:
            error = str(exc)
    views = [RunView(r, reader.store) for r in records]  # statuses as every read shows them
    sections = [s for s in section if s in SECTIONS] or list(SECTIONS)
    rows: list[Any] = []
    if comparison is not None:
        rows = [r for r in comparison.rows if r.section in sections and (only != "differences" or r.differs)]
    picker: list[Any] = []
    if comparison is None:  # the chosen runs first (checked), then the latest ones
        latest = reader.client.search_runs(None, limit=PICKER_RUNS).items
        picker = [*views, *(r for r in latest if r.id not in {c.id for c in records})]
    pipelines = list(dict.fromkeys(r.pipeline_name for r in records))
    context = {
        "nav": "compare",
        "error": error,
        "comparison": comparison,
        "runs": views,
        "rows": rows,
        "only": only,
        "sections": sections,
        "all_sections": SECTIONS,
        "chosen": names,
        "picker": picker,
        "max_compared": MAX_COMPARED,
        "pipelines": pipelines,
        "differences_link": url_with(request, only="differences"),
        "all_link": url_with(request, only=None),
        "counts": _counts(comparison.rows) if comparison else {},
    }
    return render(request, "compare.html", context)


def _counts(rows: list[Any]) -> dict[str, tuple[int, int]]:
    """Per section: (rows, differing rows)."""
    counts: dict[str, tuple[int, int]] = {}
    for row in rows:
        total, differing = counts.get(row.section, (0, 0))
        counts[row.section] = (total + 1, differing + int(row.differs))
    return counts


@router.get("/pipelines/{name:path}/metrics", response_class=HTMLResponse)
def metrics_page(
    request: Request,
    name: str,
    reader: UiReader = Depends(ui_reader),
    keys: list[str] = Query(default_factory=list),
    last: str = "",
) -> HTMLResponse:
    """The pipeline's metrics run by run: the chart and the table (``last``: a number of runs, or
    empty for all, as the form sends it; out of range is clamped)."""
    latest = min(max(int(last), 1), MAX_CHART_RUNS) if last.strip().isdigit() else None
    try:
        everything = metric_history(reader.store, name, None, latest or MAX_CHART_RUNS)
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    offered = numeric_columns(everything)
    chosen = [k for k in dict.fromkeys(keys) if k in offered] or offered
    unknown = [k for k in keys if k not in offered]
    context = {
        "nav": "metrics",
        "pipeline": name,
        "history": everything,
        "offered": offered,
        "chosen": chosen,
        "unknown": unknown,
        "last": latest,
        "chart": metric_chart(everything, chosen),
        "columns": [c for c in everything.columns if c in chosen or c not in offered],
        "max_runs": MAX_CHART_RUNS,
    }
    return render(request, "metrics.html", context)
