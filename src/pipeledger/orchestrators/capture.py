"""Capturing what a step prints and logs while it runs."""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class _Tee(io.TextIOBase):
    """Writes to the capture buffer and, unless silenced, to the original stream."""

    def __init__(self, buffer: io.StringIO, lock: threading.Lock, echo: TextIO | None) -> None:
        self._buffer = buffer
        self._lock = lock
        self._echo = echo

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer.write(text)
        if self._echo is not None:
            self._echo.write(text)
        return len(text)

    def flush(self) -> None:
        if self._echo is not None:
            self._echo.flush()

    def isatty(self) -> bool:
        return False


class _BufferHandler(logging.Handler):
    def __init__(self, buffer: io.StringIO, lock: threading.Lock) -> None:
        super().__init__(logging.DEBUG)
        self._buffer = buffer
        self._lock = lock
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a broken log call must not fail the step
            line = f"{record.levelname} {record.name}: {record.msg!r}"
        with self._lock:
            self._buffer.write(line + "\n")


@contextmanager
def capture_output(echo: bool) -> Iterator[io.StringIO]:
    """Capture ``sys.stdout``, ``sys.stderr`` and ``logging`` records into a buffer.

    With ``echo`` the output still reaches the terminal. Only Python-level writes
    are captured (not output written by C extensions straight to file descriptors).
    """
    buffer = io.StringIO()
    lock = threading.Lock()
    old_out, old_err = sys.stdout, sys.stderr
    handler = _BufferHandler(buffer, lock)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    sys.stdout = _Tee(buffer, lock, old_out if echo else None)
    sys.stderr = _Tee(buffer, lock, old_err if echo else None)
    try:
        yield buffer
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        root.removeHandler(handler)
        root.setLevel(old_level)
