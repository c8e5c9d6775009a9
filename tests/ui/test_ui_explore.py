"""The artifact page (record, preview, downloads, the lineage explorer), the compare page, the
metrics chart and ``pipeledger ui export`` in a real browser, against a real ``pipeledger server``
process of this module (on :func:`tests.ui.conftest.databases`: SQLite by default) holding the
runs of :mod:`tests.ui.explore_data`: the explorer expanded by clicks (with and without
JavaScript, and with the keyboard), summarised past its node limit at hundreds of nodes, its
exports equal to the CLI's; two runs compared with their differences highlighted; the metric
chart's hover and series; the exported page opened from disk (``file://``); hostile names shown
as text on each of these."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import pytest
from click.testing import CliRunner, Result
from playwright.sync_api import expect

from pipeledger.cli.main import cli as main_cli
from tests.rest_server import ServerProcess, pipeledger
from tests.servers import scratch_database
from tests.ui.conftest import ROOT, Site, _screenshots, databases
from tests.ui.explore_data import SWEEP_RUNS, png
from tests.ui.recorded import HOSTILE_OUTPUT, HOSTILE_PIPELINE, HOSTILE_RUN, HOSTILE_STEP, SCRIPT
from tests.ui.test_ui_hostile import INJECTED, check_clean


def check_export_clean(page: Any) -> None:
    """:func:`check_clean` for an exported page: nothing injected ran or was planted; its HTML links
    (the pictures' links are anchors, checked by the caller) are hovered."""
    for link in page.locator("main > table a, main section a").all()[:40]:
        if link.is_visible():
            link.hover()
    found = page.evaluate(INJECTED)
    assert found["pwned"] is None and found["handlers"] == [] and found["javascript_links"] == []
    assert found["scripts"] == [] and page.dialogs == [] and page.errors == []


@pytest.fixture(scope="module", params=databases())
def explore(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server process (on each of :func:`~tests.ui.conftest.databases`) whose store holds
    :mod:`tests.ui.explore_data`'s runs."""
    database = request.param
    with ExitStack() as stack:
        url = None if database == "sqlite" else stack.enter_context(scratch_database(database))
        server = ServerProcess(database, tmp_path_factory.mktemp(f"ui-explore-{database}"), url).start()
        stack.callback(server.stop)
        result = pipeledger(server.home, "stack", "set", "served")
        assert result.returncode == 0, result.stderr
        env = {**os.environ, "PIPELEDGER_HOME": str(server.home), "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
        recorded = subprocess.run(
            [sys.executable, "-m", "tests.ui.explore_data"], env=env, capture_output=True, text=True, timeout=300
        )
        assert recorded.returncode == 0, recorded.stderr[-3000:]
        site = Site(server, _screenshots(tmp_path_factory), database)
        site.notes.update(json.loads(recorded.stdout.strip().splitlines()[-1]))
        yield site


def cli(site: Site, *args: str) -> Result:
    """``pipeledger ARGS`` in this process, on the served stack's home."""
    return CliRunner().invoke(main_cli, list(args), env={"PIPELEDGER_HOME": str(site.server.home)})


def element_shot(site: Site, page: Any, selector: str, name: str) -> None:
    """Save a screenshot of the element ``selector`` only, as ``<database>-<name>.png``."""
    page.locator(selector).first.screenshot(path=str(site.screenshots / f"{site.database}-{name}.png"))


def nodes(page: Any) -> int:
    return int(page.locator("svg.lineage").get_attribute("data-nodes"))


def click_node(page: Any, node_id: str) -> int:
    """Click a node of the explorer and wait for the graph to change; the new node count."""
    before = page.locator("svg.lineage").get_attribute("data-nodes")
    page.locator(f'svg.lineage a.node[data-id="{node_id}"]').click()
    page.wait_for_function(
        "before => document.querySelector('svg.lineage').getAttribute('data-nodes') !== before", arg=before
    )
    return nodes(page)


def test_artifact_page_shows_record_preview_and_downloads(explore: Site, page: Any) -> None:
    model = explore.notes["training-2/train/model"]
    page.goto(f"{explore.url}/ui/artifacts/{model}")
    facts = page.locator("table.artifact-facts")
    expect(page.locator("h1")).to_contain_text(model)
    expect(facts).to_contain_text("Data (builtins.dict)")
    expect(facts).to_contain_text(re.compile(r"sha256 [0-9a-f]{64}"))
    expect(facts.locator("code.uri")).to_contain_text(f"/model/{model}")
    expect(page.locator("pre.preview-text")).to_contain_text('"w": 0.2')
    explore.shot(page, "artifact")
    # producer and consumer link to their step pages
    facts.get_by_role("link", name="evaluate").click()
    expect(page.locator("h1")).to_contain_text("evaluate")
    page.go_back()
    # one file, streamed, and all files as a tar
    file_href = page.locator("ul.files a").first.get_attribute("href")
    body = page.request.get(explore.url + file_href).body()
    assert body == b'{"w": 0.2, "n": 4}'
    tar = page.request.get(f"{explore.url}/ui/artifacts/{model}/download")
    assert tar.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(tar.body())) as archive:
        assert archive.getnames() == [f"artifact-{model}/data.json"]
    refused = page.request.get(f"{explore.url}/ui/artifacts/{model}/files/..%2F..%2Fmetadata.db")
    assert refused.status == 404
    check_clean(page)


def test_an_image_artifact_is_shown(explore: Site, page: Any) -> None:
    picture = explore.notes["plotting-1/draw/picture"]
    page.goto(f"{explore.url}/ui/artifacts/{picture}")
    image = page.locator("img.preview-image")
    expect(image).to_be_visible()
    assert image.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]") == [True, 48, 32]
    served = page.request.get(f"{explore.url}/ui/artifacts/{picture}/image")
    assert served.headers["content-type"] == "image/png" and served.body() == png()
    text = explore.notes["training-2/train/model"]
    assert page.request.get(f"{explore.url}/ui/artifacts/{text}/image").status == 404  # not an image
    check_clean(page)


def test_lineage_explorer_expands_on_click_and_keeps_its_state_in_the_url(explore: Site, page: Any) -> None:
    model = explore.notes["training-2/train/model"]
    data = explore.notes["training-1/load/output"]
    page.goto(f"{explore.url}/ui/artifacts/{model}")
    start = nodes(page)
    assert start == 4  # depth 1 both ways: load.output -> train -> model -> evaluate
    grown = click_node(page, data)  # its other consumers (train of training-1, -3) and their outputs
    assert grown > start
    assert parse_qs(urlparse(page.url).query)["expand"] == [data]
    train_1 = explore.notes["training-1/train"]
    more = click_node(page, train_1)  # training-1's evaluate
    assert more > grown
    expect(page.locator(".explorer-status")).to_contain_text("2 expanded")
    explore.shot(page, "lineage-expanded")
    element_shot(explore, page, "#lineage-explorer", "lineage-expanded-explorer")
    page.reload()  # the view survives a reload
    assert nodes(page) == more
    page.go_back()  # and the history
    page.wait_for_function("n => document.querySelector('svg.lineage').getAttribute('data-nodes') == n", arg=str(grown))
    click_node(page, data)  # clicking an expanded node removes its neighbours
    assert nodes(page) == start and "expand" not in page.url
    page.locator(f'svg.lineage a.node[data-id="{data}"]').focus()  # the keyboard works as the mouse
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.search.includes('expand=')")
    assert nodes(page) == grown
    assert page.evaluate("() => document.activeElement.getAttribute('data-id')") == data  # focus stays
    page.keyboard.press("Enter")
    page.wait_for_function("() => !location.search.includes('expand=')")
    page.locator("#lineage-explorer").get_by_role("link", name="More: depth 2").click()
    page.wait_for_function("() => location.search.includes('depth=2')")
    assert nodes(page) > start
    check_clean(page)


def test_lineage_explorer_works_without_javascript(explore: Site, browser: Any) -> None:
    model = explore.notes["training-2/train/model"]
    data = explore.notes["training-1/load/output"]
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{explore.url}/ui/artifacts/{model}")
        start = nodes(page)
        with page.expect_navigation():
            page.locator(f'svg.lineage a.node[data-id="{data}"]').click()
        assert nodes(page) > start and f"expand={data}" in page.url
    finally:
        context.close()


def test_lineage_past_the_node_limit_is_summarised(explore: Site, page: Any) -> None:
    table = explore.notes["seed-1/make_data/table"]
    page.goto(f"{explore.url}/ui/artifacts/{table}")
    status = page.locator(".explorer-status")
    expect(status).to_contain_text(f"{2 + SWEEP_RUNS * 3} nodes")  # producer, itself, per run fit + 2 outputs
    expect(status).to_contain_text("Summarised")
    groups = page.locator("svg.lineage a.node.group, svg.lineage g.node.group")
    expect(groups).to_have_count(4)  # make_data, fit, fit.model, fit.score
    expect(page.locator("svg.lineage")).to_contain_text(f"×{SWEEP_RUNS} step runs")
    expect(page.locator("table.lineage-nodes")).to_contain_text("fit.model")
    explore.shot(page, "lineage-summary")
    element_shot(explore, page, "#lineage-explorer", "lineage-summary-explorer")
    page.locator("#lineage-explorer").get_by_role("link", name="Show every node").click()
    page.wait_for_function("() => location.search.includes('view=full')")
    assert nodes(page) == 2 + SWEEP_RUNS * 3
    expect(page.locator("svg.lineage a.node")).to_have_count(2 + SWEEP_RUNS * 3 - 1)  # all but the root link
    page.locator("#lineage-explorer").get_by_role("link", name="Summarise").click()
    page.wait_for_function("() => location.search.includes('view=summary')")
    expect(page.locator(".explorer-status")).to_contain_text("Summarised")


def test_lineage_exports_are_the_clis(explore: Site, page: Any) -> None:
    model = explore.notes["training-2/train/model"]
    page.goto(f"{explore.url}/ui/artifacts/{model}")
    links = page.locator("nav.explorer-controls .exports a")
    expect(links).to_have_text(["DOT", "SVG", "JSON", "OpenLineage"])
    got = {
        fmt: page.request.get(explore.url + str(links.nth(i).get_attribute("href")))
        for i, fmt in enumerate(["dot", "svg", "json", "openlineage"])
    }
    for fmt in ("dot", "json"):
        printed = cli(explore, "lineage", model, "--both", "--depth", "1", "--format", fmt)
        assert printed.exit_code == 0, printed.output
        assert got[fmt].text() == printed.output, fmt
    assert got["svg"].text().lstrip().startswith("<?xml") and "<svg" in got["svg"].text()
    assert got["svg"].headers["content-disposition"].startswith("attachment")
    events = got["openlineage"].json()
    assert {e["eventType"] for e in events} >= {"START", "COMPLETE"}


def compare_rows(page: Any) -> dict[tuple[str, str], tuple[list[str], bool]]:
    """(section, item) -> (the runs' values, whether the row is marked as differing)."""
    found = {}
    for row in page.locator("table.compare tbody tr").all():
        section, item = (h.replace("differs", "").strip() for h in row.locator("th").all_inner_texts())
        found[(section, item)] = (row.locator("td").all_inner_texts(), "differs" in (row.get_attribute("class") or ""))
    return found


def test_compare_two_runs_highlights_differences(explore: Site, page: Any) -> None:
    page.goto(f"{explore.url}/ui/compare")
    picker = page.locator("form.picker")
    page.get_by_label("Other runs (names or ids, comma-separated)").fill("training-1, training-2")
    picker.get_by_role("button", name="Compare").click()
    expect(page.locator("table.compare")).to_be_visible()
    assert parse_qs(urlparse(page.url).query)["runs"] == ["training-1, training-2"]
    rows = compare_rows(page)
    assert rows[("parameters", "pipeline lr")] == (["0.1", "0.2"], True)
    assert rows[("metrics", "train.accuracy")] == (["0.6", "0.7"], True)
    assert rows[("parameters", "pipeline n_rows")] == (["4", "4"], False)
    assert rows[("outputs", "load.output")][1] is False  # the same data: computed once, then reused
    assert rows[("steps", "load")] == (["completed", "cached"], True)
    highlighted = page.locator("table.compare tr.differs")
    assert highlighted.count() >= 3
    background = highlighted.first.evaluate("row => getComputedStyle(row).backgroundColor")
    plain = page.locator("table.compare tr.same").first.evaluate("row => getComputedStyle(row).backgroundColor")
    assert background != plain  # the highlight is visible
    explore.shot(page, "compare")
    element_shot(explore, page, "main", "compare-main")
    page.get_by_label("only differences").check()
    page.get_by_role("button", name="Apply").click()
    only = compare_rows(page)
    assert only and all(differs for _, differs in only.values())
    assert "only=differences" in page.url
    check_clean(page)


def test_a_run_page_leads_to_compare_and_metrics(explore: Site, page: Any) -> None:
    page.goto(f"{explore.url}/ui/runs/training-3")
    page.get_by_role("link", name="Compare with other runs").click()
    picked = page.locator("form.picker input[type=checkbox]:checked")
    expect(picked).to_have_count(1)
    expect(picked).to_have_value("training-3")
    page.get_by_label("Other runs (names or ids, comma-separated)").fill("training-1")  # not among the latest
    page.locator("form.picker").get_by_role("button", name="Compare").click()
    expect(page.locator("table.compare thead")).to_contain_text("training-3")
    expect(page.locator("table.compare thead")).to_contain_text("training-1")
    page.get_by_role("link", name="training", exact=True).click()  # "Metrics over time: training"
    expect(page.locator("h1")).to_have_text("Metrics of training")
    expect(page.locator("svg.metric-chart")).to_be_visible()


def test_metrics_chart_hover_and_series(explore: Site, page: Any) -> None:
    page.goto(f"{explore.url}/ui/pipelines/training/metrics")
    chart = page.locator("svg.metric-chart")
    expect(chart.locator("g.series")).to_have_count(2)  # accuracy, rows (evaluated is boolean)
    points = chart.locator('g.series[data-series="accuracy"] .point')
    expect(points).to_have_count(4)
    points.nth(1).hover()
    expect(page.locator("#metric-readout")).to_have_text("training-2: accuracy = 0.7")
    explore.shot(page, "metrics")
    element_shot(explore, page, "figure.metric-figure", "metrics-chart")
    page.get_by_label("rows", exact=True).uncheck()  # the script hides the panel without a reload
    expect(chart.locator('g.series[data-series="rows"]')).to_be_hidden()
    page.get_by_role("button", name="Apply").click()  # the form draws the chosen metrics only
    expect(page.locator("svg.metric-chart g.series")).to_have_count(1)
    assert parse_qs(urlparse(page.url).query)["keys"] == ["accuracy"]
    check_clean(page)


def test_export_opens_from_disk(explore: Site, page: Any, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = cli(explore, "ui", "export", "training-2", "--out", str(out))
    assert result.exit_code == 0, result.output
    page.goto((out / "index.html").as_uri())
    expect(page.locator("h1")).to_have_text("Run training-2")
    expect(page.locator("figure.dag svg")).to_be_visible()
    expect(page.locator("figure.gantt svg")).to_be_visible()
    expect(page.locator("section.step")).to_have_count(3)
    hrefs = page.evaluate(
        "() => Array.from(document.querySelectorAll('[href], [src], [*|href]')).map("
        "e => e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('xlink:href'))"
    )
    assert hrefs and all(h.startswith("#") for h in hrefs), hrefs
    assert page.evaluate("() => document.scripts.length") == 0
    explore.shot(page, "export")
    explore.shot(page, "export-top", full_page=False)
    page.locator("figure.dag svg a").filter(has_text="evaluate").first.click()
    assert re.search(r"#step-[0-9a-f]{32}$", page.url)
    expect(page.locator("section.step:target h3")).to_contain_text("evaluate")
    check_export_clean(page)


def test_hostile_names_render_as_text_on_these_pages(explore: Site, page: Any, tmp_path: Path) -> None:
    hostile = explore.notes[f"{HOSTILE_RUN}/{HOSTILE_STEP}/{HOSTILE_OUTPUT}"]
    page.goto(f"{explore.url}/ui/artifacts/{hostile}")
    expect(page.locator("table.artifact-facts")).to_contain_text(HOSTILE_RUN)
    expect(page.locator("svg.lineage")).to_contain_text("step")
    expect(page.locator("pre.preview-text")).to_contain_text(SCRIPT)
    check_clean(page)
    step_id = explore.notes[f"{HOSTILE_RUN}/{HOSTILE_STEP}"]
    page.locator(f'svg.lineage a.node[data-id="{step_id}"]').click()  # its step: nothing new, but expanded
    page.wait_for_function("() => location.search.includes('expand=')")
    expect(page.locator(".explorer-status")).to_contain_text("1 expanded")
    check_clean(page)
    explore.shot(page, "hostile-artifact")
    page.goto(f"{explore.url}/ui/compare?runs={quote(HOSTILE_RUN)}&runs=training-1")
    expect(page.locator("table.compare thead")).to_contain_text(HOSTILE_RUN)
    expect(page.locator("table.compare tbody")).to_contain_text(SCRIPT)
    check_clean(page)
    page.goto(f"{explore.url}/ui/compare?runs={quote(SCRIPT)}&runs={quote(HOSTILE_RUN)}")
    expect(page.locator(".error")).to_contain_text(SCRIPT)
    check_clean(page)
    page.goto(f"{explore.url}/ui/pipelines/{quote(HOSTILE_PIPELINE, safe='')}/metrics")
    expect(page.locator("h1")).to_contain_text(HOSTILE_PIPELINE)
    expect(page.locator("table.metrics-table")).to_contain_text(SCRIPT)
    check_clean(page)
    out = tmp_path / "hostile"
    result = cli(explore, "ui", "export", HOSTILE_RUN, "--out", str(out))
    assert result.exit_code == 0, result.output
    page.goto((out / "index.html").as_uri())
    expect(page.locator("h1")).to_contain_text(HOSTILE_RUN)
    check_export_clean(page)
