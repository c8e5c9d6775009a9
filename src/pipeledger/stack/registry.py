"""Stacks opened in this process, so that runs and clients share connections."""

from __future__ import annotations

import json
import threading

from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.home import pipeledger_home
from pipeledger.stack.stack import Stack, build_stack

_lock = threading.Lock()
_open: dict[tuple[str, str], tuple[str, Stack]] = {}


def get_stack(name: str | None = None) -> Stack:
    """The stack called ``name`` (default: the active stack).

    A stack is built once per process, home and configuration, and reused while its
    registered configuration is unchanged.
    """
    from pipeledger.stack.manager import StackManager

    home = pipeledger_home()
    manager = StackManager(home)
    config = manager.store.load()
    name = name or manager.active_stack_name()
    entry = manager.get_stack_entry(name, config)
    components = {t.value: config.component(t, entry.component(t)) for t in ComponentType}
    fingerprint = json.dumps(
        {t: c.model_dump() if c else None for t, c in components.items()}, sort_keys=True, default=str
    )
    key = (str(home), name)
    with _lock:
        cached = _open.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        stack = build_stack(name, home)
        if cached is not None:
            cached[1].close()
        _open[key] = (fingerprint, stack)
        return stack


def close_stacks() -> None:
    """Close every stack opened by :func:`get_stack` (tests use this between homes)."""
    with _lock:
        for _, stack in _open.values():
            stack.close()
        _open.clear()
