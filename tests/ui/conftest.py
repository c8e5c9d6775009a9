"""The UI's browser tests: one real ``pipeledger server`` process for the package (SQLite; and a
second in front of PostgreSQL when that backend is enabled), its database filled by running real
pipelines (:mod:`tests.ui.recorded`), and Debian's Chromium driven by Playwright.

Screenshots go to ``$PIPELEDGER_UI_SCREENSHOTS`` (default: a temporary directory). Without
Chromium or Playwright the tests are skipped, unless ``$PIPELEDGER_TEST_BACKENDS`` is set (CI's
strict mode), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.rest_server import ServerProcess, pipeledger
from tests.servers import enabled_backends, scratch_database, strict

ROOT = Path(__file__).resolve().parents[2]


def databases() -> list[str]:
    """The databases behind the server the UI is tested on: ``$PIPELEDGER_UI_TEST_DATABASES``
    (comma-separated, among the enabled backends; default ``sqlite``: the pages read through the
    client, whose queries the store suites test on every database)."""
    wanted = os.environ.get("PIPELEDGER_UI_TEST_DATABASES", "sqlite").split(",")
    return [d.strip() for d in wanted if d.strip() in ("sqlite", *enabled_backends())]


@dataclass
class Site:
    """A running server with recorded runs: its URL, its home (to record more runs) and where
    screenshots go."""

    server: ServerProcess
    screenshots: Path
    database: str
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def record(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``python -m tests.ui.recorded ARGS`` on the served stack (its output in
        ``record-<ARG>.log`` next to the server's log); the caller waits for it."""
        env = {
            **os.environ,
            "PIPELEDGER_HOME": str(self.server.home),
            "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        }
        with open(self.server.log.with_name(f"record-{args[0]}.log"), "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "tests.ui.recorded", *args], env=env, stdout=log, stderr=log)

    def record_and_wait(self, *args: str) -> None:
        """Record with :meth:`record` and check it succeeded."""
        assert self.record(*args).wait(180) == 0, self.server.log.with_name(f"record-{args[0]}.log").read_text()[-3000:]

    def shot(self, page: Any, name: str, full_page: bool = True) -> Path:
        """Save a screenshot of ``page`` as ``<database>-<name>.png``."""
        path = self.screenshots / f"{self.database}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path


def _screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("PIPELEDGER_UI_SCREENSHOTS")
    if configured:
        Path(configured).mkdir(parents=True, exist_ok=True)
        return Path(configured)
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="package", params=databases())
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A ``pipeledger server`` process with the runs of :func:`tests.ui.recorded.record_all`."""
    database = request.param
    with ExitStack() as stack:
        url = None if database == "sqlite" else stack.enter_context(scratch_database(database))
        server = ServerProcess(database, tmp_path_factory.mktemp(f"ui-{database}"), url).start()
        stack.callback(server.stop)
        result = pipeledger(server.home, "stack", "set", "served")
        assert result.returncode == 0, result.stderr
        site = Site(server, _screenshots(tmp_path_factory), database)
        site.record_and_wait("all")
        yield site


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright."""
    executable = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        executable = None
    if executable is None:
        message = "the UI tests need Chromium (apt-get install chromium) and Playwright (pip install playwright)"
        if strict():
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser tab (1280x860) that records every JavaScript dialog and page error in
    ``page.dialogs`` / ``page.errors`` (and dismisses the dialogs)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.dialogs = dialogs
    tab.errors = errors
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
