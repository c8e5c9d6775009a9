"""Finding stacks by name. (Issue: the registered stacks come with the stack configuration.)"""

from __future__ import annotations

import threading

from pipeledger.stack.home import pipeledger_home
from pipeledger.stack.stack import Stack, default_stack

_lock = threading.Lock()
_open: dict[tuple[str, str], Stack] = {}


def get_stack(name: str | None = None) -> Stack:
    """The stack called ``name`` (default: the active stack), opened once per process and home."""
    key = (str(pipeledger_home()), name or "default")
    with _lock:
        stack = _open.get(key)
        if stack is None:
            stack = _open[key] = default_stack()
        return stack


def close_stacks() -> None:
    """Close every stack opened by :func:`get_stack` (tests use this between homes)."""
    with _lock:
        for stack in _open.values():
            stack.close()
        _open.clear()
