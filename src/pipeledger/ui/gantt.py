"""A run's timeline (Gantt chart) as SVG drawn on the server: one bar per step run, from its start to
its end (to now while it runs), coloured by status, on a time axis starting at the run's start.

Every label is escaped here: the SVG is inserted in pages as it is.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from pipeledger.lineage.render import visible
from pipeledger.text import plural
from pipeledger.ui.formatting import duration

ROW = 26
LABEL_WIDTH = 190
CHART_WIDTH = 620
AXIS = 26
#: Tick intervals of the time axis, in seconds.
TICKS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120)
TICKS += (300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
#: Most bars drawn (a run with more steps shows the first ones and says how many are left out).
MAX_BARS = 300


@dataclass(frozen=True)
class Bar:
    """One step run on the timeline."""

    name: str
    status: str
    start: datetime
    end: datetime | None
    href: str | None = None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _tick_step(total: float) -> float:
    """A round tick interval giving 4-10 ticks over ``total`` seconds."""
    for step in (
        0.001,
        0.002,
        0.005,
        0.01,
        0.02,
        0.05,
        0.1,
        0.2,
        0.5,
        1,
        2,
        5,
        10,
        15,
        30,
        60,
        120,
        300,
        600,
        900,
        1800,
        3600,
        7200,
        14400,
        43200,
        86400,
    ):
        if total / step <= 8:
            return step
    return total / 8


def gantt_svg(
    bars: Sequence[Bar], run_start: datetime, now: datetime | None = None, title: str = "Timeline of the steps"
) -> str:
    """The SVG of ``bars`` on a time axis from ``run_start``; a running bar ends at ``now``."""
    now = _utc(now or datetime.now(timezone.utc))
    origin = _utc(run_start)
    shown = sorted(bars, key=lambda b: (_utc(b.start), b.name))[:MAX_BARS]
    ends = [_utc(b.end) if b.end else now for b in shown]
    total = max([(end - origin).total_seconds() for end in ends] + [0.001])
    scale = CHART_WIDTH / total
    height = AXIS + ROW * max(len(shown), 1) + 8
    width = LABEL_WIDTH + CHART_WIDTH + 80
    esc: Callable[[object], str] = lambda v: html.escape(visible(str(v)))  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="gantt-title" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" class="gantt">',
        f'<title id="gantt-title">{esc(title)}</title>',
    ]
    tick = _tick_step(total)
    t = 0.0
    while t <= total + 1e-9:
        x = LABEL_WIDTH + t * scale
        parts.append(f'<line class="gantt-grid" x1="{x:.1f}" y1="{AXIS - 6}" x2="{x:.1f}" y2="{height - 4}"/>')
        parts.append(
            f'<text class="gantt-axis" x="{x:.1f}" y="{AXIS - 10}" text-anchor="middle">{esc(duration(t))}</text>'
        )
        t += tick
    for index, (bar, end) in enumerate(zip(shown, ends)):
        y = AXIS + index * ROW
        x = LABEL_WIDTH + (_utc(bar.start) - origin).total_seconds() * scale
        w = max((end - _utc(bar.start)).total_seconds() * scale, 2.0)
        status = bar.status.replace(" ", "-")
        label = f"{bar.name} — {bar.status}, {duration((end - _utc(bar.start)).total_seconds())}"
        name = esc(bar.name if len(bar.name) <= 28 else bar.name[:27] + "…")
        text = f'<text class="gantt-label" x="{LABEL_WIDTH - 8}" y="{y + 16}" text-anchor="end">{name}</text>'
        rect = (
            f'<rect class="gantt-bar-{esc(status)}" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{ROW - 8}" rx="3">'
            f"<title>{esc(label)}</title></rect>"
        )
        after = (
            f'<text class="gantt-axis" x="{x + w + 4:.1f}" y="{y + 16}">'
            f"{esc(duration((end - _utc(bar.start)).total_seconds()))}</text>"
        )
        if bar.href:
            parts.append(f'<a href="{esc(bar.href)}">{text}{rect}</a>{after}')
        else:
            parts.append(text + rect + after)
    if len(bars) > len(shown):
        parts.append(
            f'<text class="gantt-axis" x="4" y="{height - 2}">'
            f"{plural(len(bars) - len(shown), 'more step')} not drawn</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
