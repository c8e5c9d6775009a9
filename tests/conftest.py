"""Shared fixtures: every test runs with its own PIPELEDGER_HOME and quiet progress."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeledger.stack.registry import close_stacks


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``$PIPELEDGER_HOME`` for each test; progress display off."""
    path = tmp_path / "home"
    monkeypatch.setenv("PIPELEDGER_HOME", str(path))
    monkeypatch.setenv("PIPELEDGER_QUIET", "1")
    yield path
    close_stacks()
