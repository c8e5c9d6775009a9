"""Shared fixtures: every test runs with its own PIPELEDGER_HOME and quiet progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from pipeledger.stack.registry import close_stacks
from tests.servers import enabled_backends, scratch_database


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``$PIPELEDGER_HOME`` for each test; progress display off."""
    path = tmp_path / "home"
    monkeypatch.setenv("PIPELEDGER_HOME", str(path))
    monkeypatch.setenv("PIPELEDGER_QUIET", "1")
    yield path
    close_stacks()


@pytest.fixture(scope="session")
def server_urls() -> Iterator[dict[str, URL]]:
    """One scratch database per enabled server backend for the whole session (dropped at the end)."""
    with ExitStack() as stack:
        yield {
            backend: stack.enter_context(scratch_database(backend))
            for backend in enabled_backends()
            if backend != "sqlite"
        }
