"""The runs, run and step pages in a real browser against a real server: what each shows, the
links between them, the filter, sorting and paging with all view state in the URL, the logs
paged and searched, keyboard navigation."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

from playwright.sync_api import expect

from tests.ui.conftest import Site


def rows(page: Any) -> Any:
    return page.locator("table.runs tbody tr[data-run-id]")


def run_names(page: Any) -> list[str]:
    return [text.strip() for text in page.locator("table.runs tbody tr[data-run-id] td:nth-child(2)").all_inner_texts()]


def query(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def test_runs_page_shows_every_run_with_its_columns(site: Site, page: Any) -> None:
    page.goto(site.url + "/")
    expect(page).to_have_url(re.compile(r"/ui/runs$"))
    expect(page.locator("h1")).to_have_text("Runs")
    names = run_names(page)
    assert {"training-1", "training-2", "training-3", "training-4", "failing-1", "talkative-1"} <= set(names)
    assert names.index("training-4") < names.index("training-1")  # newest first
    headers = page.locator("table.runs thead th").all_inner_texts()
    assert [h.split("\n")[0].strip(" ▼▲") for h in headers[:5]] == ["Status", "Run", "Pipeline", "Started", "Duration"]
    assert "lr" in " ".join(headers) and "accuracy" in " ".join(headers)  # chosen automatically
    cached = page.locator("tr[data-run-id]", has=page.get_by_role("link", name="training-4", exact=True))
    expect(cached.locator("td.steps")).to_have_text("3/3 · 3 cached")
    expect(cached.locator(".badge")).to_have_text("completed")
    failed = page.locator("tr[data-run-id]", has=page.get_by_role("link", name="failing-1", exact=True))
    expect(failed.locator(".badge")).to_have_text("failed")
    best = page.locator("tr[data-run-id]", has=page.get_by_role("link", name="training-3", exact=True))
    expect(best.locator(".tag")).to_have_text(["best", "sweep"])
    site.shot(page, "runs")
    page.set_viewport_size({"width": 1400, "height": 560})
    page.goto(site.url + "/ui/runs?param=lr&metric=accuracy&filter=" + quote("pipeline in ('training', 'failing')"))
    expect(rows(page)).to_have_count(5)
    site.shot(page, "runs-plain", full_page=False)


def test_filter_is_applied_and_kept_in_the_url(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/runs")
    page.get_by_label("Filter").fill("pipeline = 'training' and params.lr >= 0.2")
    page.get_by_label("Filter").press("Enter")
    expect(rows(page)).to_have_count(2)
    assert set(run_names(page)) == {"training-2", "training-3"}
    assert query(page)["filter"] == ["pipeline = 'training' and params.lr >= 0.2"]
    page.reload()  # the view survives a reload
    expect(rows(page)).to_have_count(2)
    expect(page.get_by_label("Filter")).to_have_value("pipeline = 'training' and params.lr >= 0.2")
    site.shot(page, "runs-filtered")
    page.get_by_label("Filter").fill("status = 'done'")
    page.get_by_label("Filter").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("status is one of")
    expect(rows(page)).to_have_count(0)


def test_sorting_by_a_column_and_paging(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/runs?filter=" + "pipeline%20%3D%20%27training%27")
    page.locator("thead").get_by_role("link", name="lr").click()
    expect(page.locator("th[aria-sort]")).to_contain_text("lr")
    assert query(page)["sort"] == ["params.lr"]
    descending = run_names(page)
    assert descending[0] == "training-3"
    page.locator("thead").get_by_role("link", name="lr").click()
    assert query(page)["dir"] == ["asc"]
    assert run_names(page)[-1] == "training-3"
    # Pages of two: every page token in the URL, Previous goes back.
    page.goto(site.url + "/ui/runs?filter=pipeline%20%3D%20%27training%27&sort=run&dir=asc&limit=2")
    assert run_names(page) == ["training-1", "training-2"]
    page.get_by_role("link", name="Next →").click()
    assert run_names(page) == ["training-3", "training-4"]
    assert "page" in query(page)
    expect(page.get_by_role("link", name="Next →")).to_have_count(0)
    page.get_by_role("link", name="← Previous").click()
    assert run_names(page) == ["training-1", "training-2"]


def test_run_page_draws_the_dag_and_timeline_and_links_to_steps(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/runs")
    page.get_by_role("link", name="training-4", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/runs/training-4$"))
    expect(page.locator("h1")).to_contain_text("Run training-4")
    dag = page.locator("figure.dag svg")
    expect(dag.locator("g.node")).to_have_count(6)  # 3 steps, 3 artifacts
    assert dag.locator("g.node path[stroke-dasharray], g.node polygon[stroke-dasharray]").count() == 3  # cached: dashed
    expect(page.locator("figure.gantt svg rect")).to_have_count(3)
    expect(page.locator("table.steps tbody tr")).to_have_count(3)
    expect(page.locator("#params-heading + table")).to_contain_text("lr")
    expect(page.locator("#rerun-commands")).to_contain_text("pipeledger run rerun training-4")
    site.shot(page, "run")
    page.locator("figure.dag svg a").filter(has_text="train").first.click()
    expect(page.locator("h1")).to_contain_text("Step train")


def test_step_page_explains_the_cache_and_links_to_the_original(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/runs/training-4")
    page.locator("table.steps").get_by_role("link", name="train", exact=True).click()
    expect(page.locator("#cache-explanation")).to_contain_text("cache hit")
    expect(page.locator("h1 .badge")).to_have_text("cached")
    expect(page.locator("#metadata-heading + table")).to_contain_text("accuracy")
    expect(page.locator("#outputs")).to_contain_text("model")
    artifact = page.locator("#outputs a[href^='/ui/artifacts/']").first
    assert re.fullmatch(r"/ui/artifacts/[0-9a-f]+", artifact.get_attribute("href") or "")
    expect(page.locator("#outputs pre.preview").first).to_contain_text('"w"')
    site.shot(page, "step-cached")
    site.shot(page, "step-cached-top", full_page=False)
    page.locator("#cached-from").get_by_role("link", name="training-1").click()
    expect(page).to_have_url(re.compile(r"/ui/runs/training-1$"))


def test_step_logs_are_paged_and_searched(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/runs/talkative-1")
    page.locator("table.steps").get_by_role("link", name="chatty").click()
    logs = page.locator("#logs")
    expect(logs).to_contain_text("line 00001 of the chatty step")
    assert "needle" not in logs.inner_text()  # one bounded page, not the whole file
    page.get_by_role("link", name="Later →").click()
    assert int(query(page)["log_offset"][0]) > 0
    expect(logs).not_to_contain_text("line 00001 of")
    page.get_by_role("link", name="End", exact=True).click()
    expect(logs).to_contain_text("needle in the haystack")
    page.get_by_label("Search the logs").fill("NEEDLE")
    page.get_by_label("Search the logs").press("Enter")
    expect(page.locator("#log-search-summary")).to_contain_text("1 line containing")
    expect(logs).to_contain_text("3001  needle in the haystack")
    site.shot(page, "step-logs")


def test_failed_step_shows_its_error(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/runs/failing-1")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    expect(page.locator("figure.dag svg g.node")).to_have_count(6)  # 4 steps (one not run), 2 artifacts
    site.shot(page, "run-failed", full_page=False)
    page.locator("table.steps").get_by_role("link", name="explode").click()
    expect(page.locator("pre.error")).to_contain_text("ValueError: boom")
    expect(page.locator("#logs")).to_contain_text("about to fail")


def test_unknown_pages_say_what_is_missing(site: Site, page: Any) -> None:
    response = page.goto(site.url + "/ui/runs/no-such-run")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("no-such-run")
    response = page.goto(site.url + "/ui/steps/0123")
    assert response is not None and response.status == 404


def test_keyboard_reaches_the_filter_and_the_runs(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/runs")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    for _ in range(3):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "filter":
            break
    assert page.evaluate("document.activeElement.id") == "filter"
    page.keyboard.type("status = 'failed'")
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_count(1)
    for _ in range(40):  # on to the first run's link, then open it with Enter
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "failing-1":
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/runs/failing-1$"))
    assert page.errors == []
