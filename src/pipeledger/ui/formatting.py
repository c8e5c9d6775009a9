"""How values are shown in pages: times, durations, sizes, JSON (the templates' filters)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from pipeledger.lineage.render import visible


def when(moment: datetime | None) -> str:
    """``2026-11-30 17:02:03`` (UTC), or an empty string."""
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def iso(moment: datetime | None) -> str:
    """ISO 8601 in UTC (for ``<time datetime>``), or an empty string."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def duration(value: timedelta | float | None) -> str:
    """``1.2 s``, ``3 min 04 s``, ``2 h 05 min``; empty for None."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def size(value: int | None) -> str:
    """``532 B``, ``4.1 KiB``, ``2.0 MiB``..."""
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"  # pragma: no cover - the loop returns


def show(value: Any) -> str:
    """A metadata or parameter value as short text: strings as they are (control characters made
    visible), numbers compactly, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return str(value)
    return visible(json.dumps(value, sort_keys=True, default=str))


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON text."""
    return visible(json.dumps(value, indent=2, sort_keys=True, default=str))


def short(identifier: str | None, length: int = 12) -> str:
    """The first ``length`` characters of an id or hash."""
    return (identifier or "")[:length]


FILTERS: dict[str, Callable[..., str]] = {
    "when": when,
    "iso": iso,
    "duration": duration,
    "size": size,
    "show": show,
    "pretty_json": pretty_json,
    "short": short,
}
