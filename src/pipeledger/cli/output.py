"""Shared CLI plumbing: the consoles, error handling, and formatting helpers."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from pipeledger.exceptions import PipeledgerError
from pipeledger.orchestrators.progress import format_duration

F = TypeVar("F", bound=Callable[..., Any])

STATUS_STYLES = {
    "running": "yellow",
    "completed": "green",
    "cached": "cyan",
    "failed": "bold red",
    "crashed": "bold magenta",
}


def console() -> Console:
    """The console for results (stdout); wide enough not to wrap in pipes."""
    return Console(width=None if sys.stdout.isatty() else 160, soft_wrap=False)


def error_console() -> Console:
    """The console for errors (stderr)."""
    return Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def handle_errors(func: F) -> F:
    """Print pipeledger errors as one line on stderr and exit 1 (``--debug`` shows the traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            ctx = click.get_current_context(silent=True)
            if ctx is not None and ctx.find_root().params.get("debug"):
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, (PipeledgerError, OSError, ValueError)):
                message = f"unexpected {type(exc).__name__}: {message} (run with --debug for the traceback)"
            error_console().print(f"[bold red]Error:[/bold red] {esc(message)}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


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
