"""Showing a run's progress: a live table on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipeledger.orchestrators.capture import OutputSink
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

    def output_sink(self) -> OutputSink | None:
        """Where steps' output is shown while it is captured; None for the streams in place
        when the step starts."""
        return None


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
    """A table of steps that updates in place on a terminal.

    The display writes to the stream that was ``sys.stderr`` when the reporter was made
    (never to whatever ``sys.stderr`` is later: while a step runs that is the step's
    capture, and writing into it would feed the display back into itself). Step output
    is printed above the table, line by line (see :class:`_ConsoleSink`).
    """

    def __init__(self, console: Console | None = None, stdout: TextIO | None = None) -> None:
        # ``file`` fixed now: a Console without one writes to whatever sys.stderr is at the time.
        self.console = console or Console(file=sys.stderr)
        self._stdout = stdout or sys.stdout
        self._rows: dict[str, list[str]] = {}
        self._started: dict[str, float] = {}
        self._title = Text()
        self._live: Live | None = None
        self._sink = _ConsoleSink(self.console, None if _same_terminal(self._stdout) else self._stdout)

    def _render(self) -> Group:
        table = Table(show_edge=False, box=None)
        table.add_column("step")
        table.add_column("status")
        table.add_column("duration", justify="right")
        for step, (status, duration) in self._rows.items():
            if status == "running":
                duration = format_duration(time.monotonic() - self._started[step])
            table.add_row(Text(step), Text(status, style=_STYLES.get(status, "")), duration)
        return Group(self._title, table)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def output_sink(self) -> OutputSink:
        return self._sink

    def run_started(self, pipeline: str, run: str, steps: list[str]) -> None:
        self._title = Text.assemble((pipeline, "bold"), " run ", (run, "bold"))
        self._rows = {s: ["pending", ""] for s in steps}
        self._live = Live(
            console=self.console,
            get_renderable=self._render,  # rendered at each refresh: running steps' durations advance
            refresh_per_second=4,
            # Other writes while the table shows (outside steps) are printed above it too;
            # the console's own file is fixed, so this cannot loop.
            redirect_stdout=_same_terminal(self._stdout),
            redirect_stderr=True,
        )
        self._live.start()

    def step_started(self, step: str) -> None:
        self._started[step] = time.monotonic()
        self._rows[step] = ["running", ""]
        self._refresh()

    def step_finished(self, step: str, status: str, seconds: float, error: str | None) -> None:
        self._sink.end_lines()
        self._rows[step] = [status, format_duration(seconds)]
        self._refresh()

    def step_skipped(self, step: str, reason: str) -> None:
        self._rows[step] = ["skipped", ""]
        self._refresh()

    def run_finished(self, run: str, status: str, seconds: float) -> None:
        self._sink.end_lines()
        style = _STYLES.get(status, "")
        self._title.append_text(Text.assemble(" ", (status, style), f" in {format_duration(seconds)}"))
        self._refresh()
        self.close()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


class _ConsoleSink:
    """Prints step output above the live table, a whole line at a time.

    A line is printed when its newline arrives (a partial line waits for the rest, or
    for the step to end). A carriage return starts the line over, as on a terminal, so
    a progress bar that redraws itself with ``\r`` shows its last state once. ANSI
    colours are kept. Output for a ``stdout`` that is not this terminal (redirected to a
    file or a pipe) goes there unchanged.
    """

    def __init__(self, console: Console, stdout: TextIO | None) -> None:
        self._console = console
        self._stdout = stdout
        self._partial: dict[str, str] = {"stdout": "", "stderr": ""}
        self._lock = threading.Lock()

    def __call__(self, stream: str, text: str) -> None:
        if stream == "stdout" and self._stdout is not None:
            self._stdout.write(text)
            if "\n" in text:
                self._stdout.flush()
            return
        with self._lock:
            *lines, self._partial[stream] = (self._partial[stream] + text).split("\n")
        self._print(lines)

    def end_lines(self) -> None:
        """Print what is left of partial lines (the step ended without a final newline)."""
        with self._lock:
            rest = [p for p in self._partial.values() if p]
            self._partial = {"stdout": "", "stderr": ""}
        self._print(rest)
        if self._stdout is not None:
            self._stdout.flush()

    def _print(self, lines: list[str]) -> None:
        for line in lines:
            shown = line.rstrip("\r").rsplit("\r", 1)[-1]
            self._console.print(Text.from_ansi(shown), soft_wrap=True, highlight=False)


def _same_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (so its output belongs above the live table)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


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
