"""Losing the database server mid-run: every error is a pipeledger error, nothing is left half-done.

The shared test servers are never stopped: the store reaches its server through a
:class:`~tests.dbproxy.TcpProxy`, and a step of the pipeline cuts it (a stopped server:
connections refused), freezes it (a hung server: connections time out) or drops its
connections (a restart, as ``pg_terminate_backend`` does). The pipeline call, the client and
the CLI must then raise or print a pipeledger error (never ``psycopg``/``pymysql`` ones), and
the run must never be recorded finished while a step is left ``running``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from pipeledger import Client, PipeledgerError, Status, StoreUnavailableError, pipeline, step
from pipeledger.cli.main import cli
from pipeledger.models import utcnow
from pipeledger.stack.registry import close_stacks, get_stack
from tests.dbproxy import TcpProxy
from tests.servers import POSTGRES_URL, enabled_backends, open_server_store, scratch_database, server_config

SERVERS = [b for b in enabled_backends() if b != "sqlite"]


class Lossy:
    """The proxy in front of the current test's server (steps reach it here)."""

    proxy: TcpProxy | None = None
    url: URL | None = None


@pytest.fixture(params=SERVERS)
def lossy(request: pytest.FixtureRequest, home: Path) -> Iterator[str]:
    """The active stack records into a scratch database on the server, through a proxy."""
    backend = request.param
    with scratch_database(backend) as url:
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or (3306 if backend == "mysql" else 5432))
        Lossy.proxy, Lossy.url = proxy, url
        values = {**server_config(backend, url), "port": str(proxy.port), "connect_timeout": "2"}
        runner = CliRunner()
        options = [f"--{k}={v}" for k, v in values.items()]
        result = runner.invoke(cli, ["metadata-store", "register", "lossy", f"--flavor={backend}", *options])
        assert result.exit_code == 0, result.output
        result = runner.invoke(cli, ["stack", "register", "lossy", "-m", "lossy", "--set"])
        assert result.exit_code == 0, result.output
        try:
            yield backend
        finally:
            proxy.cut()
            close_stacks()
            Lossy.proxy = Lossy.url = None


@step
def stop_server() -> int:
    assert Lossy.proxy is not None
    Lossy.proxy.cut()
    return 1


@step
def freeze_server() -> int:
    assert Lossy.proxy is not None
    Lossy.proxy.freeze()
    return 1


@step
def restart_server() -> int:
    assert Lossy.proxy is not None
    assert Lossy.proxy.drop_connections() > 0
    return 1


@step
def terminate_backends() -> int:
    """What ``pg_terminate_backend`` does to the store's connections (PostgreSQL only)."""
    assert Lossy.url is not None
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": Lossy.url.database},
        ).scalar()
    admin.dispose()
    assert killed
    return 1


@step
def downstream(value: int) -> int:
    return value + 1


def one_line(message: str) -> None:
    assert message and "\n" not in message


@pytest.mark.parametrize("fault", [stop_server, freeze_server], ids=["stopped", "frozen"])
def test_a_server_lost_mid_run_raises_a_pipeledger_error(lossy: str, fault: object) -> None:
    if lossy == "mysql" and fault is freeze_server:
        pytest.skip("PyMySQL waits its read_timeout (60 s) for a hung server's handshake: minutes per test")

    @pipeline(name=f"server loss {lossy}")
    def loses_the_server() -> None:
        downstream(fault())  # type: ignore[operator]

    with pytest.raises(PipeledgerError) as caught:
        loses_the_server()
    assert isinstance(caught.value, StoreUnavailableError), repr(caught.value)
    one_line(str(caught.value))
    assert "psycopg" not in type(caught.value).__module__ and "pymysql" not in type(caught.value).__module__

    result = CliRunner().invoke(cli, ["run", "list"])  # the same process: its pooled connections are dead
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    with pytest.raises(StoreUnavailableError):
        Client().list_runs()

    # Nothing could be recorded after the loss: the run is left `running` with its step (never
    # a finished run with a running step), and crash detection ends both.
    assert Lossy.url is not None
    store = open_server_store(lossy, Lossy.url, Path("/nonexistent"))
    try:
        (run,) = store.list_runs()
        steps = store.list_step_runs(run.id)
        assert run.status is Status.RUNNING
        assert [(s.name, s.status) for s in steps] == [(fault.name, Status.RUNNING)]  # type: ignore[attr-defined]
        assert store.mark_crashed(heartbeat_before=utcnow() + timedelta(seconds=1), at=utcnow()) == [run.id]
        assert {s.status for s in store.list_step_runs(run.id)} == {Status.CRASHED}
        assert store.integrity_problems() == []
    finally:
        store.close()


def test_a_server_restart_mid_run_is_survived(lossy: str) -> None:
    @pipeline(name=f"server restart {lossy}")
    def restarts_the_server() -> None:
        downstream(restart_server())

    run = restarts_the_server()
    assert run.status is Status.COMPLETED
    assert run.steps["downstream"].output.read() == 2


@pytest.mark.skipif("postgresql" not in SERVERS, reason="PostgreSQL is not among the test backends")
def test_terminated_postgresql_backends_mid_run_are_survived(home: Path) -> None:
    with scratch_database("postgresql") as url:
        Lossy.url = url
        runner = CliRunner()
        options = [f"--{k}={v}" for k, v in server_config("postgresql", url).items()]
        assert runner.invoke(cli, ["metadata-store", "register", "pg", "--flavor=postgresql", *options]).exit_code == 0
        assert runner.invoke(cli, ["stack", "register", "pg", "-m", "pg", "--set"]).exit_code == 0

        @pipeline(name="terminated backends")
        def terminates() -> None:
            downstream(terminate_backends())

        try:
            get_stack().metadata_store.list_runs()  # a pooled connection to terminate
            run = terminates()
            assert run.status is Status.COMPLETED and run.steps["downstream"].output.read() == 2
        finally:
            close_stacks()
            Lossy.url = None
