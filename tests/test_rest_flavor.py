"""The ``rest`` flavor end to end: registered with the CLI, pipelines recorded through a real
``pipeledger server`` process and read back by the client and the CLI; its secrets and errors.

The contract suite runs on it in ``tests/test_store_contract.py`` (``rest-sqlite``,
``rest-postgresql``); failures of the server during runs are in ``tests/test_rest_failures.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeledger import Client
from pipeledger.cli.main import cli
from pipeledger.exceptions import ApiVersionError, ConflictError, StoreUnavailableError
from pipeledger.metadata_store.rest import RestMetadataStore
from pipeledger.metadata_store.rest.transport import Transport
from tests import pipelines as P
from tests.rest_server import ServerProcess, free_port
from tests.servers import rest_backends, rest_enabled

pytestmark = pytest.mark.skipif(not rest_enabled(), reason="rest is not among PIPELEDGER_TEST_BACKENDS")

TOKEN = "s3cr3t-t0ken-value"


def register_rest_stack(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Register metadata store and stack ``team`` (flavor rest, token from the environment), active."""
    monkeypatch.setenv("PIPELEDGER_TOKEN", TOKEN)
    runner = CliRunner()
    for args in (
        ["metadata-store", "register", "team", "--flavor=rest", f"--url={url}", "--token=${env:PIPELEDGER_TOKEN}"],
        ["stack", "register", "team", "-m", "team"],
        ["stack", "set", "team"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output


def test_the_client_needs_no_server_packages() -> None:
    """A client machine installs httpx only: opening the rest flavor never imports FastAPI."""
    code = (
        "import sys, pipeledger.metadata_store.flavors.rest, pipeledger.metadata_store.rest.store\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette'))\n"
        "assert not loaded and 'pipeledger.server' not in sys.modules, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("backend", [b.removeprefix("rest-") for b in rest_backends()])
def test_pipelines_record_through_the_server_and_read_back(
    backend: str, rest_servers: object, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    """register → stack → run (computed, then cached) → `run list`, the client, lineage and `check`,
    all through the server; the token is never written down."""
    server: ServerProcess = rest_servers.get(backend)  # type: ignore[attr-defined]
    server.empty()
    register_rest_stack(server.url, monkeypatch)
    first = P.training.with_options(run_name="team-{n}")(lr=0.3)
    second = P.training.with_options(run_name="team-{n}")(lr=0.3)
    assert first.stack["metadata_store"]["flavor"] == "rest"
    runner = CliRunner()
    listed = runner.invoke(cli, ["run", "list", "--pipeline", "training"])
    assert listed.exit_code == 0 and first.name in listed.stdout and second.name in listed.stdout
    again = Client().get_run(second.name)
    assert again.status.value == "completed"
    assert {step.status.value for step in again} == {"cached"}
    assert again["train"].outputs["model"].read() == {"w": 0.3, "n": 4}
    assert again["train"].metadata["accuracy"] == pytest.approx(0.8)
    shown = runner.invoke(cli, ["run", "show", second.name, "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["name"] == second.name
    lineage = runner.invoke(cli, ["lineage", f"{second.name}/train/model", "--format", "json"])
    assert lineage.exit_code == 0, lineage.output
    graph = json.loads(lineage.stdout)
    assert {node.get("name") for node in graph["nodes"]} >= {"load", "train"}
    checked = runner.invoke(cli, ["metadata-store", "check"])
    assert checked.exit_code == 0, checked.output
    described = runner.invoke(cli, ["metadata-store", "describe", "team"])
    assert "${env:PIPELEDGER_TOKEN}" in described.stdout
    for path in home.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in json.dumps(first.stack)


def test_register_refuses_a_clear_token_and_credentials_in_the_url() -> None:
    runner = CliRunner()
    clear = runner.invoke(
        cli, ["metadata-store", "register", "t", "--flavor=rest", "--url=http://127.0.0.1:8237", f"--token={TOKEN}"]
    )
    assert clear.exit_code == 1 and "clear-text secret" in clear.stderr and TOKEN not in clear.stderr
    in_url = runner.invoke(
        cli, ["metadata-store", "register", "t", "--flavor=rest", f"--url=http://u:{TOKEN}@127.0.0.1:8237"]
    )
    assert in_url.exit_code == 1 and "--token" in in_url.stderr and TOKEN not in in_url.stderr
    query = runner.invoke(
        cli, ["metadata-store", "register", "t", "--flavor=rest", f"--url=http://127.0.0.1:8237/?token={TOKEN}"]
    )
    assert query.exit_code == 1 and TOKEN not in query.stderr


def test_a_server_that_is_down_is_one_line_naming_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    register_rest_stack(url, monkeypatch)
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["run", "list"])
    assert time.monotonic() - started < 10  # opening a store is not retried: it fails at once
    assert result.exit_code == 1 and "retried" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"cannot reach the pipeledger server at {url}" in result.stderr
    with pytest.raises(StoreUnavailableError, match="pipeledger server start"):
        RestMetadataStore(Transport(url))


class _OtherVersion(BaseHTTPRequestHandler):
    """A pipeledger server of a future release: API version 2, so no /api/v1."""

    def do_GET(self) -> None:
        found = self.path == "/health"
        body = json.dumps({"status": "ok", "api_version": "2", "pipeledger": "9.0.0"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body if found else b'{"detail": "Not Found"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_version_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _OtherVersion)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_of_another_api_version_is_refused_naming_both(other_version_server: str) -> None:
    with pytest.raises(ApiVersionError) as refused:
        RestMetadataStore(Transport(other_version_server))
    message = str(refused.value)
    assert "API version 2 (pipeledger 9.0.0)" in message and "this client API version 1" in message


def test_the_client_calls_the_server_for_every_contract_method() -> None:
    """Each routed contract method is the client's own (one call to its route), not a default of
    the base class made of other calls: a method added to the contract fails here until the
    client names it (its route exists already, built from the signature)."""
    from pipeledger.metadata_store.rest.protocol import contract_methods

    missing = [name for name in contract_methods() if name not in vars(RestMetadataStore)]
    assert missing == []


def test_a_rest_stack_records_into_its_project(rest_servers: object, home: Path) -> None:
    """The flavor's ``project`` setting: the runner creates the pipeline there; `run list` shows
    the project; a stack of another project running the same pipeline is refused, naming it."""
    server: ServerProcess = rest_servers.get("sqlite")  # type: ignore[attr-defined]
    server.empty()
    runner = CliRunner()
    for args in (
        ["metadata-store", "register", "ml", "--flavor=rest", f"--url={server.url}", "--project=ml"],
        ["metadata-store", "register", "plain", "--flavor=rest", f"--url={server.url}"],
        ["stack", "register", "ml", "-m", "ml"],
        ["stack", "register", "plain", "-m", "plain"],
        ["stack", "set", "ml"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    run = P.training.with_options(run_name="ml-{n}")(lr=0.3)
    assert Client().get_run(run.name).project == "ml"
    listed = runner.invoke(cli, ["run", "list"])
    assert listed.exit_code == 0 and "project" in listed.stdout and "ml" in listed.stdout
    assert json.loads(runner.invoke(cli, ["run", "list", "--json"]).stdout)[0]["project"] == "ml"
    assert runner.invoke(cli, ["stack", "set", "plain"]).exit_code == 0
    with pytest.raises(ConflictError, match="pipeline 'training' belongs to project 'ml', not 'default'"):
        P.training.with_options(run_name="plain-{n}")(lr=0.3)
