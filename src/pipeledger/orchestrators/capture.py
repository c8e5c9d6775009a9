"""Capturing what a step prints and logs while it runs.

While a step runs, ``sys.stdout`` and ``sys.stderr`` are replaced by tees that
append every write to the step's log buffer and hand it to an *output sink*: by
default the streams that were in place before, or a sink the progress display
provides (the live display prints step output above its table). The sink is given
the text with the name of the stream it was written to, and never writes back
into the captured streams, so capture and display cannot feed each other.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

OutputSink = Callable[[str, str], None]
"""Receives step output as it is written: ``sink(stream, text)`` with ``stream`` either
``"stdout"`` or ``"stderr"``. It must not write to ``sys.stdout``/``sys.stderr`` (they are
the capturing tees while a step runs)."""

BACKGROUND_THREAD_PREFIX = "pipeledger-"
"""Threads pipeledger starts itself (e.g. the heartbeat) are named with this prefix; their
log records are not part of any step's logs."""


def stream_sink(stdout: TextIO, stderr: TextIO) -> OutputSink:
    """A sink that writes step output to ``stdout``/``stderr`` as is."""
    streams = {"stdout": stdout, "stderr": stderr}

    def sink(stream: str, text: str) -> None:
        target = streams[stream]
        target.write(text)
        if "\n" in text:
            target.flush()

    return sink


class _Tee(io.TextIOBase):
    """Appends writes to the capture buffer and hands them to the output sink."""

    def __init__(self, name: str, buffer: io.StringIO, lock: threading.Lock, sink: OutputSink | None, encoding: str):
        self._name = name
        self._buffer = buffer
        self._lock = lock
        self._sink = sink
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]  # libraries read ``sys.stdout.encoding``
        return self._encoding

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._buffer.write(text)
        if self._sink is not None and text:
            self._sink(self._name, text)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: the buffer is in memory and sinks flush whole lines themselves."""

    def isatty(self) -> bool:
        return False


class _BufferHandler(logging.Handler):
    """Appends the step's log records to the buffer.

    Records of threads that run another step's capture are not this step's either.
    Records from pipeledger's own background threads (the heartbeat) are not the
    step's: they go where they would have gone without the capture. When the root
    logger had no handler of its own, records of level WARNING and above are also
    shown through the sink, as Python's last-resort handler would have shown them.
    """

    def __init__(
        self, buffer: io.StringIO, lock: threading.Lock, sink: OutputSink | None, had_handlers: bool, thread: int
    ) -> None:
        super().__init__(logging.DEBUG)
        self._thread = thread
        self._buffer = buffer
        self._lock = lock
        self._sink = sink
        self._had_handlers = had_handlers
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if (record.threadName or "").startswith(BACKGROUND_THREAD_PREFIX):
            last_resort = logging.lastResort
            if not self._had_handlers and last_resort is not None and record.levelno >= last_resort.level:
                last_resort.handle(record)
            return
        if record.thread != self._thread and (record.thread in _ACTIVE or len(_ACTIVE) > 1):
            return  # another step's record (steps running in threads)
        try:
            line = self.format(record)
        except Exception:  # a broken log call must not fail the step
            line = f"{record.levelname} {record.name}: {record.msg!r}"
        with self._lock:
            self._buffer.write(line + "\n")
        if self._sink is not None and not self._had_handlers and record.levelno >= logging.WARNING:
            try:
                message = record.getMessage()
            except Exception:
                message = repr(record.msg)
            self._sink("stderr", message + "\n")


class _Dispatch(io.TextIOBase):
    """Stands for ``sys.stdout``/``sys.stderr`` while captures are active: each write goes to the
    tee of the capture of the writing thread. A thread without a capture of its own (e.g. one a
    step started) writes into the capture when exactly one is active (steps run one at a time),
    else to the stream in place before the captures began."""

    def __init__(self, index: int, fallback: TextIO) -> None:
        self._index = index
        self._fallback = fallback

    def _target(self) -> TextIO | _Tee:
        tees = _ACTIVE.get(threading.get_ident())
        if tees is None and len(_ACTIVE) == 1:
            tees = next(iter(_ACTIVE.values()))
        return tees[self._index] if tees is not None else self._fallback

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target(), "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._target().isatty()


_STATE = threading.Lock()
_ACTIVE: dict[int, tuple[_Tee, _Tee]] = {}  # thread ident -> its capture's (stdout, stderr) tees
_SAVED: list[Any] = []  # [stdout, stderr, root level] in place before the first active capture


@contextmanager
def capture_output(echo: bool | OutputSink) -> Iterator[io.StringIO]:
    """Capture ``sys.stdout``, ``sys.stderr`` and ``logging`` records into a buffer.

    ``echo`` is ``False`` (output is only captured), ``True`` (it also reaches the
    streams in place before the capture) or an :data:`OutputSink`. Only Python-level
    writes are captured (not output written by C extensions straight to file
    descriptors). The buffer holds exactly what the step wrote, in order.

    Captures may be active in several threads at once (steps running in threads): each
    thread's writes and log records go to its own capture (see :class:`_Dispatch`).
    """
    buffer = io.StringIO()
    lock = threading.Lock()
    me = threading.get_ident()
    root = logging.getLogger()
    with _STATE:
        if not _ACTIVE:
            _SAVED[:] = [sys.stdout, sys.stderr, root.level]
            sys.stdout = _Dispatch(0, sys.stdout)
            sys.stderr = _Dispatch(1, sys.stderr)
            if root.level > logging.INFO or root.level == logging.NOTSET:
                root.setLevel(logging.INFO)
        old_out, old_err = _SAVED[0], _SAVED[1]
        sink: OutputSink | None
        if echo is True:
            sink = stream_sink(old_out, old_err)
        elif echo is False:
            sink = None
        else:
            sink = echo
        handler = _BufferHandler(
            buffer, lock, sink, had_handlers=any(not isinstance(h, _BufferHandler) for h in root.handlers), thread=me
        )
        root.addHandler(handler)
        _ACTIVE[me] = (
            _Tee("stdout", buffer, lock, sink, getattr(old_out, "encoding", None) or "utf-8"),
            _Tee("stderr", buffer, lock, sink, getattr(old_err, "encoding", None) or "utf-8"),
        )
    try:
        yield buffer
    finally:
        with _STATE:
            root.removeHandler(handler)
            _ACTIVE.pop(me, None)
            if not _ACTIVE:
                sys.stdout, sys.stderr = _SAVED[0], _SAVED[1]
                root.setLevel(_SAVED[2])
