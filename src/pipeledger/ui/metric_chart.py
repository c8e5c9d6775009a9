"""A pipeline's metrics over its runs as server-rendered SVG (the ``pipeline metrics --plot``
picture in a page): one panel per numeric metric, each with its own y axis, runs along a shared
x axis, failed and crashed runs marked red. Every point carries its run and value in a
``<title>`` (a tooltip without JavaScript) and in ``data-`` attributes (for ``explore.js``'s
hover read-out); every panel is a ``<g class="series" data-series="...">`` a script can hide."""

from __future__ import annotations

import html
import math
from typing import Any

from pipeledger.comparison import UNSUCCESSFUL, MetricHistory
from pipeledger.lineage.render import visible

WIDTH = 820
PANEL = 150
LEFT, RIGHT, TOP, GAP = 70, 20, 24, 46
#: Run names drawn under the x axis at most (every k-th beyond).
MAX_LABELS = 30


def _t(value: object) -> str:
    return html.escape(visible(str(value)))


def numeric_columns(history: MetricHistory) -> list[str]:
    """The metrics with at least one numeric (non-boolean) value."""
    return [c for c in history.columns if any(_number(r.get(c)) is not None for r in history.records)]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def metric_chart(history: MetricHistory, columns: list[str] | None = None) -> str:
    """The SVG (one ``<svg>`` element, no script) of ``history``'s numeric metrics (or of
    ``columns`` among them); an empty string when none is numeric."""
    shown = [c for c in (columns or numeric_columns(history)) if c in numeric_columns(history)]
    records = history.records
    if not shown or not records:
        return ""
    plot_w = WIDTH - LEFT - RIGHT
    step = plot_w / max(len(records) - 1, 1)
    longest = max(min(len(str(r["run"])), 24) for r in records)
    height = TOP + len(shown) * (PANEL + GAP) - GAP + 24 + int(longest * 4.6)  # room for the slanted names
    failed = [i for i, r in enumerate(records) if str(r.get("status") or "") in {s.value for s in UNSUCCESSFUL}]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="metric-chart" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{_t(history.pipeline)}: metrics over runs" '
        'font-family="system-ui, sans-serif" font-size="11">'
    ]

    def x_of(index: int) -> float:
        return LEFT + (index * step if len(records) > 1 else plot_w / 2)

    for number, column in enumerate(shown):
        top = TOP + number * (PANEL + GAP)
        points = [(i, v) for i, r in enumerate(records) if (v := _number(r.get(column))) is not None]
        low, high = min(v for _, v in points), max(v for _, v in points)
        if low == high:
            low, high = low - (abs(low) or 1) * 0.05, high + (abs(high) or 1) * 0.05

        def y_of(value: float, top: float = top, low: float = low, high: float = high) -> float:
            return top + PANEL - (value - low) / (high - low) * PANEL

        out.append(f'<g class="series" data-series="{_t(column)}">')
        out.append(f'<text x="{LEFT}" y="{top - 8}" font-weight="bold">{_t(column)}</text>')
        out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#c8c8c8"/>')
        for tick in range(3):
            value = low + (high - low) * tick / 2
            y = y_of(value)
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{_fmt(value)}</text>')
        for index in failed:
            x = x_of(index)
            out.append(
                f'<line class="failed-run" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + PANEL}" '
                'stroke="#c62828" stroke-dasharray="2 3"/>'
            )
        path = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="#1f6fb2" stroke-width="2"/>')
        for i, v in points:
            run = records[i]["run"]
            status = str(records[i].get("status") or "")
            bad = i in failed
            label = f"{run}: {column} = {_fmt(v)}" + (f" ({status})" if bad else "")
            attrs = (
                f'class="point{" failed" if bad else ""}" data-run="{_t(run)}" data-value="{_fmt(v)}" '
                f'data-series="{_t(column)}"'
            )
            x, y = x_of(i), y_of(v)
            if bad:
                out.append(
                    f'<g {attrs}><title>{_t(label)}</title><path d="M {x - 5:.1f} {y - 5:.1f} l 10 10 m -10 0 '
                    f'l 10 -10" stroke="#c62828" stroke-width="3"/>'
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="transparent"/></g>'
                )
            else:
                circle = f'<circle {attrs} cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#1f6fb2">'
                out.append(f"{circle}<title>{_t(label)}</title></circle>")
        out.append("</g>")
    axis = TOP + len(shown) * (PANEL + GAP) - GAP + 14
    every = max(1, math.ceil(len(records) / MAX_LABELS))
    for i, record in enumerate(records):
        last = i == len(records) - 1 and (len(records) - 1) % every >= every / 2
        if i % every and not last:
            continue
        x = x_of(i)
        color = "#c62828" if i in failed else "#333"
        name = str(record["run"])
        name = name if len(name) <= 24 else name[:23] + "…"
        out.append(
            f'<text x="{x:.1f}" y="{axis}" fill="{color}" text-anchor="end" '
            f'transform="rotate(-40 {x:.1f} {axis})">{_t(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
