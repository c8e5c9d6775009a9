"""Shared CLI plumbing: the consoles and formatting helpers (errors: :mod:`pipeledger.cli.errors`)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape

from pipeledger.orchestrators.progress import format_duration

STATUS_STYLES = {
    "running": "yellow",
    "completed": "green",
    "cached": "cyan",
    "failed": "bold red",
    "crashed": "bold magenta",
    "skipped": "dim",
}


def console() -> Console:
    """The console for results (stdout); wide enough not to wrap in pipes."""
    return Console(width=None if sys.stdout.isatty() else 160, soft_wrap=False)


def error_console() -> Console:
    """The console for errors (stderr)."""
    return Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def esc(value: object) -> str:
    """``value`` as text that Rich prints literally (``[true]`` is not taken for markup)."""
    return escape(str(value))


def status_text(status: str) -> str:
    """A status with its color markup."""
    style = STATUS_STYLES.get(status, "")
    return f"[{style}]{status}[/{style}]" if style else status


def when(moment: datetime | None) -> str:
    """A UTC timestamp without microseconds."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def duration(value: timedelta | None) -> str:
    """A short duration, empty if unknown."""
    return format_duration(value.total_seconds()) if value is not None else ""


def compact_json(value: Any, limit: int = 80) -> str:
    """JSON on one line, shortened to ``limit`` characters."""
    text = json.dumps(value, separators=(", ", ": "), default=str, ensure_ascii=False)
    return esc(text if len(text) <= limit else text[: limit - 1] + "…")
