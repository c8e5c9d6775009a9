"""Showing a run's progress: a live table on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipeledger.text import plural

QUIET_ENV = "PIPELEDGER_QUIET"

_STYLES = {
    "pending": "dim",
    "running": "yellow",
    "completed": "green",
    "cached": "cyan",
    "failed": "bold red",
    "skipped": "dim",
}


def format_duration(seconds: float | None) -> str:
    """``0.12s``, ``3.4s``, ``2m05s``, ``1h02m``; empty for None."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ProgressReporter:
    """Receives a run's events. This base class shows nothing (the ``quiet`` reporter)."""

    def run_started(self, pipeline: str, run: str, steps: list[str]) -> None:
        """The run is recorded and about to execute ``steps`` in this order."""

    def step_started(self, step: str) -> None:
        """A step began."""

    def step_finished(self, step: str, status: str, seconds: float, error: str | None) -> None:
        """A step ended with ``status`` (completed, cached or failed)."""

    def step_skipped(self, step: str, reason: str) -> None:
        """A step was not run (an upstream step failed)."""

    def run_finished(self, run: str, status: str, seconds: float) -> None:
        """The run ended."""

    def close(self) -> None:
        """Release the display."""


class PlainReporter(ProgressReporter):
    """One line per event, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def _line(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"[pipeledger] {text}\n")
        stream.flush()

    def run_started(self, pipeline: str, run: str, steps: list[str]) -> None:
        self._line(f"run {run} of pipeline {pipeline} started ({plural(len(steps), 'step')})")

    def step_started(self, step: str) -> None:
        self._line(f"step {step} started")

    def step_finished(self, step: str, status: str, seconds: float, error: str | None) -> None:
        suffix = f": {error}" if error else ""
        self._line(f"step {step} {status} in {format_duration(seconds)}{suffix}")

    def step_skipped(self, step: str, reason: str) -> None:
        self._line(f"step {step} skipped: {reason}")

    def run_finished(self, run: str, status: str, seconds: float) -> None:
        self._line(f"run {run} {status} in {format_duration(seconds)}")


class LiveReporter(ProgressReporter):
    """A table of steps that updates in place on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._rows: dict[str, list[str]] = {}
        self._started: dict[str, float] = {}
        self._title = ""
        self._live: Live | None = None

    def _render(self) -> Table:
        table = Table(title=self._title, title_justify="left", show_edge=False, box=None)
        table.add_column("step")
        table.add_column("status")
        table.add_column("duration", justify="right")
        for step, (status, duration) in self._rows.items():
            if status == "running":
                duration = format_duration(time.monotonic() - self._started[step])
            table.add_row(step, Text(status, style=_STYLES.get(status, "")), duration)
        return table

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def run_started(self, pipeline: str, run: str, steps: list[str]) -> None:
        self._title = f"[bold]{pipeline}[/bold] run [bold]{run}[/bold]"
        self._rows = {s: ["pending", ""] for s in steps}
        self._live = Live(self._render(), console=self.console, refresh_per_second=4)
        self._live.start()

    def step_started(self, step: str) -> None:
        self._started[step] = time.monotonic()
        self._rows[step] = ["running", ""]
        self._refresh()

    def step_finished(self, step: str, status: str, seconds: float, error: str | None) -> None:
        self._rows[step] = [status, format_duration(seconds)]
        self._refresh()

    def step_skipped(self, step: str, reason: str) -> None:
        self._rows[step] = ["skipped", ""]
        self._refresh()

    def run_finished(self, run: str, status: str, seconds: float) -> None:
        style = _STYLES.get(status, "")
        self._title += f" [{style}]{status}[/{style}] in {format_duration(seconds)}"
        self._refresh()
        self.close()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def is_quiet(quiet: bool | None) -> bool:
    """``quiet`` if given, else whether ``$PIPELEDGER_QUIET`` is set to a true value."""
    if quiet is None:
        return os.environ.get(QUIET_ENV, "").lower() not in ("", "0", "false", "no")
    return quiet


def choose_reporter(quiet: bool | None) -> ProgressReporter:
    """Nothing if quiet (see :func:`is_quiet`), a live table on a terminal, plain lines otherwise."""
    if is_quiet(quiet):
        return ProgressReporter()
    if sys.stderr.isatty() and os.environ.get("TERM") != "dumb":
        return LiveReporter()
    return PlainReporter()
