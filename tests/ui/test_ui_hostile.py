"""User-supplied strings (run, pipeline, step, output, tag names; parameters, metadata, logs; the
filter and the URL itself) render as text on every page: in the browser, no script runs, no
element gains an event handler, no link gets a ``javascript:`` URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import Site
from tests.ui.recorded import HOSTILE_PIPELINE, HOSTILE_RUN, HOSTILE_STEP, HOSTILE_TAG, IMAGE, JAVASCRIPT_URL, SCRIPT

INJECTED = """() => ({
  pwned: window.__pwned === undefined ? null : window.__pwned,
  handlers: Array.from(document.querySelectorAll('*')).flatMap((e) => Array.from(e.attributes)
    .filter((a) => a.name.toLowerCase().startsWith('on')).map((a) => e.tagName + ' ' + a.name)),
  javascript_links: Array.from(document.querySelectorAll('a')).map(
    (a) => a.getAttribute('href') || a.getAttribute('xlink:href') || '').filter((h) => /^\\s*javascript:/i.test(h)),
  scripts: Array.from(document.scripts).map((s) => s.src),
})"""


def check_clean(page: Any) -> None:
    """Nothing injected ran or was planted in ``page``."""
    for link in page.locator("main a").all()[:40]:  # an injected onmouseover would fire now
        link.dispatch_event("mouseover")
    found = page.evaluate(INJECTED)
    assert found["pwned"] is None
    assert found["handlers"] == []
    assert found["javascript_links"] == []
    assert all(src.endswith((".js",)) and "/ui/static/" in src for src in found["scripts"])
    assert page.dialogs == []
    assert page.errors == []


def hostile_run_url(site: Site, page: Any) -> str:
    page.goto(site.url + "/ui/runs?filter=" + quote(f"tag = '{HOSTILE_TAG}'"))
    link = page.get_by_role("link", name=HOSTILE_RUN)
    expect(link).to_have_count(1)
    return site.url + str(link.get_attribute("href"))


def test_runs_page_shows_hostile_names_as_text(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/runs?param=text&param=url&metric=score&cols=chosen")
    table = page.locator("table.runs")
    expect(table).to_contain_text(HOSTILE_RUN)
    expect(table).to_contain_text(HOSTILE_PIPELINE)
    expect(table).to_contain_text(HOSTILE_TAG)
    expect(table).to_contain_text(JAVASCRIPT_URL)
    check_clean(page)


def test_run_and_step_pages_show_hostile_names_as_text(site: Site, page: Any) -> None:
    page.goto(hostile_run_url(site, page))
    expect(page.locator("h1")).to_contain_text(HOSTILE_RUN)
    expect(page.locator("figure.dag svg")).to_contain_text("step")  # Graphviz drew the hostile labels
    expect(page.locator("figure.gantt")).to_contain_text(HOSTILE_STEP[:20])
    expect(page.locator("#log-tail")).to_contain_text(f"log line {SCRIPT} {IMAGE}")
    expect(page.locator("#params-heading + table")).to_contain_text(SCRIPT)
    check_clean(page)
    site.shot(page, "hostile-run")
    page.locator("table.steps").get_by_role("link", name=HOSTILE_STEP).click()
    expect(page.locator("h1")).to_contain_text(HOSTILE_STEP)
    expect(page.locator("#metadata-heading + table")).to_contain_text(SCRIPT)
    expect(page.locator("#metadata-heading + table")).to_contain_text(JAVASCRIPT_URL)
    expect(page.locator("#outputs")).to_contain_text("out<img src=x")
    expect(page.locator("#logs")).to_contain_text(SCRIPT)
    expect(page.locator(".docstring")).to_contain_text("<script>window.__pwned=5</script>")
    check_clean(page)
    page.get_by_label("Search the logs").fill(SCRIPT)
    page.get_by_label("Search the logs").press("Enter")
    expect(page.locator("#log-search-summary")).to_contain_text(SCRIPT)
    check_clean(page)


@pytest.mark.parametrize(
    "path",
    [
        "/ui/runs?filter=" + quote(f"name = '{SCRIPT}' and"),  # the error message quotes the filter
        "/ui/runs?sort=" + quote(SCRIPT) + "&param=" + quote(IMAGE) + "&metric=" + quote(SCRIPT),
        "/ui/runs/" + quote(SCRIPT, safe=""),  # the 404 message names it
        "/ui/steps/" + quote(IMAGE, safe=""),
    ],
)
def test_hostile_urls_render_as_text(site: Site, page: Any, path: str) -> None:
    page.goto(site.url + path)
    expect(page.locator("main")).to_be_visible()
    check_clean(page)
