"""The pages read a bounded amount: the number of SQL statements behind the runs page (one page
of runs) and a step page does not grow with the number of runs in the store. (Their speed at
100,000 runs is measured by ``benchmarks/ui.py``, not asserted here.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from pipeledger import Client
from pipeledger.ui import mount_ui
from tests.pipelines import training


@contextmanager
def counted(store: Any) -> Iterator[list[str]]:
    """The SQL statements ``store`` runs inside the block."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = store.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def app_for(client: Client) -> TestClient:
    app = FastAPI()
    app.state.store = client.store
    mount_ui(app)
    return TestClient(app)


def test_runs_and_step_pages_cost_the_same_statements_at_any_store_size() -> None:
    client = Client()
    http = app_for(client)
    costs: dict[str, list[int]] = {"runs": [], "step": [], "run": []}
    for lr in [0.1 + i / 100 for i in range(30)]:
        training.with_options(enable_cache=False)(lr=lr)
        count = len(client.list_runs(limit=None))
        if count not in (6, 30):
            continue
        step = client.get_pipeline("training").latest_run.steps["train"]
        for page, path in (
            ("runs", "/ui/runs?limit=5"),
            ("step", f"/ui/steps/{step.id}"),
            ("run", "/ui/runs/training-3"),
        ):
            with counted(client.store) as statements:
                answer = http.get(path)
            assert answer.status_code == 200, answer.text[:300]
            costs[page].append(len(statements))
    assert costs["runs"][0] == costs["runs"][1], costs
    assert costs["step"][0] == costs["step"][1], costs
    assert costs["run"][0] == costs["run"][1], costs
    assert costs["runs"][0] <= 8, costs  # runs, their tags, their steps, the steps' metadata...


def test_runs_page_shows_one_page_of_runs() -> None:
    for lr in (0.1, 0.2, 0.3, 0.4, 0.5):
        training(lr=lr)
    http = app_for(Client())
    page = http.get("/ui/runs?limit=2&sort=run&dir=asc")
    assert page.text.count('data-run-id="') == 2
    assert 'rel="next"' in page.text
