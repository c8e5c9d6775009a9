"""A running pipeline seen updating live, without a reload: its row of the runs table and its
run page change status, progress, steps and logs as it goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import expect

from tests.ui.conftest import Site


def test_a_running_run_updates_without_reload(site: Site, page: Any, tmp_path: Path) -> None:
    flag = tmp_path / "release"
    process = site.record("slow", str(flag))
    try:
        runs = site.url + "/ui/runs?filter=" + quote("pipeline = 'slow'")
        row = page.locator("table.runs tbody tr[data-run-id]").first
        for _ in range(300):  # until the run is recorded (the recording process starts Python first)
            assert process.poll() is None, "the slow pipeline ended before it was seen running"
            page.goto(runs)
            if page.locator("table.runs tbody tr[data-status='running']").count():
                break
            page.wait_for_timeout(100)
        expect(row.locator(".badge")).to_have_text("running")
        name = row.locator("td.name a").first.inner_text()
        run_page = page.context.new_page()
        run_page.errors = []
        run_page.on("pageerror", lambda error: run_page.errors.append(str(error)))
        run_page.goto(site.url + f"/ui/runs/{name}")
        expect(run_page.locator("h1 .badge")).to_have_text("running")
        expect(run_page.locator("#live-status")).to_contain_text("updates live")
        site.shot(run_page, "run-running")
        for tab in (page, run_page):
            tab.evaluate("window.__still_this_page = true")
        flag.write_text("go")
        expect(row.locator(".badge")).to_have_text("completed", timeout=30_000)
        expect(row.locator("td.steps")).to_have_text("2/2")
        expect(run_page.locator("h1 .badge")).to_have_text("completed", timeout=30_000)
        expect(run_page.locator("#steps tbody tr")).to_have_count(2)
        expect(run_page.locator("#log-tail")).to_contain_text("released")
        expect(run_page.locator("#run-progress-text")).to_have_text("2/2 done")
        expect(run_page.locator("figure.gantt svg rect")).to_have_count(2)
        for tab in (page, run_page):
            assert tab.evaluate("window.__still_this_page") is True  # updated in place, not reloaded
        assert page.errors == [] and run_page.errors == []
    finally:
        flag.write_text("go")
        assert process.wait(60) == 0
