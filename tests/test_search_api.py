"""Search through the client and the CLI: pages of views, tables, one-line errors with a caret."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from pipeledger.cli.main import cli
from pipeledger.client import Client
from pipeledger.exceptions import QueryError
from tests import pipelines as P


@pytest.fixture
def three_runs() -> Client:
    for lr in (0.1, 0.3, 0.2):
        P.training(lr=lr)
    client = Client()
    client.get_run("training-2").add_tags("prod")
    return client


def test_search_runs_filters_orders_and_pages(three_runs: Client) -> None:
    client = three_runs

    best = client.search_runs("params.lr >= 0.2", order_by=["metrics.train.accuracy desc"], limit=1)
    assert [r.name for r in best] == ["training-2"]
    rest = client.search_runs(
        "params.lr >= 0.2", order_by=["metrics.train.accuracy desc"], limit=1, page_token=best.next_page_token
    )
    assert [r.name for r in rest] == ["training-3"] and rest.next_page_token is None
    assert [r.name for r in client.search_runs("tag = 'prod'")] == ["training-2"]
    steps = client.search_steps("step = 'train' and metrics.accuracy > 0.65", order_by="metrics.accuracy")
    assert [(s.run.name, s.name) for s in steps] == [("training-3", "train"), ("training-2", "train")]
    models = client.search_artifacts("producer = 'train' and run = 'training-1'")
    assert len(models) == 2 and {a.data_type for a in models} == {"builtins.dict", "builtins.float"}
    assert [r.name for r in client.list_runs(limit=2)] == ["training-3", "training-2"]
    assert [r.name for r in client.list_runs(pipeline="training", status="completed")] == [
        "training-3",
        "training-2",
        "training-1",
    ]


def test_search_to_pandas_is_a_comparison_table(three_runs: Client) -> None:
    pd = pytest.importorskip("pandas")
    frame = three_runs.search_runs("pipeline = 'training'", order_by="params.lr").to_pandas()

    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["training-1", "training-3", "training-2"]
    assert list(frame["params.lr"]) == [0.1, 0.2, 0.3]
    assert list(frame["metrics.train.accuracy"]) == pytest.approx([0.6, 0.7, 0.8])
    assert frame.loc["training-2", "tags"] == "prod"


def test_a_bad_filter_is_a_query_error_naming_the_column(three_runs: Client) -> None:
    with pytest.raises(QueryError) as error:
        three_runs.search_runs("params.lr >= 0.2 and metrics.accuracy >")
    lines = str(error.value).splitlines()
    assert lines[0].startswith("expected a value")
    assert lines[2].index("^") == len(lines[1])  # just after the last ">": where a value was expected


def test_cli_lists_with_filter_order_json_and_csv(three_runs: Client) -> None:
    runner = CliRunner()
    args = ["run", "list", "--filter", "params.lr > 0.15", "--order-by", "params.lr desc"]

    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["training-2", "training-3"]
    result = runner.invoke(cli, [*args, "--csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["name"], r["tags"]) for r in rows] == [("training-2", "prod"), ("training-3", "")]
    result = runner.invoke(cli, ["step", "list", "-f", "step = 'evaluate'", "--json"])
    assert [s["run"] for s in json.loads(result.stdout)] == ["training-3", "training-2", "training-1"]
    result = runner.invoke(cli, ["artifact", "list", "-f", "type = 'Data'", "--limit", "1"])
    assert result.exit_code == 0 and "Data" in result.stdout and "--page-token" in result.stderr


def test_cli_prints_a_bad_filter_with_a_caret_and_no_traceback(three_runs: Client) -> None:
    result = CliRunner().invoke(cli, ["run", "list", "--filter", "status = 'done'"])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        "Error: status is one of running, completed, failed, cached, crashed, skipped",
        "  status = 'done'",
        "           ^",
    ]
