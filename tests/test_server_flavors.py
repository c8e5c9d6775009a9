"""The mysql and postgresql flavors on the real servers: errors, end to end, via the CLI."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from pipeledger import Client, StoreUnavailableError
from pipeledger.cli.main import cli
from pipeledger.metadata_store.flavors.mysql import MySQLMetadataStoreConfig, MySQLMetadataStoreFlavor
from pipeledger.metadata_store.flavors.postgresql import (
    PostgreSQLMetadataStoreConfig,
    PostgreSQLMetadataStoreFlavor,
)
from tests import pipelines as P
from tests.servers import MYSQL_URL, POSTGRES_URL, enabled_backends, server_config

SERVERS = [b for b in enabled_backends() if b != "sqlite"]
PASSWORD = "Sx9-unique-pa55word"
FLAVORS = {
    "mysql": (MySQLMetadataStoreFlavor, MySQLMetadataStoreConfig),
    "postgresql": (PostgreSQLMetadataStoreFlavor, PostgreSQLMetadataStoreConfig),
}


def open_store(backend: str, **config: object):  # type: ignore[no-untyped-def]
    flavor_cls, config_cls = FLAVORS[backend]
    return flavor_cls().create("t", config_cls(**config), Path("/nonexistent"))


def admin_url(backend: str) -> URL:
    return make_url(MYSQL_URL if backend == "mysql" else POSTGRES_URL)


@pytest.fixture(scope="module")
def password_user() -> Iterator[str]:
    """A user ``pl_pw_user`` with a known password on each server."""
    for backend in SERVERS:
        engine = create_engine(admin_url(backend), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            if backend == "mysql":
                conn.execute(text("DROP USER IF EXISTS 'pl_pw_user'@'%'"))
                conn.execute(text(f"CREATE USER 'pl_pw_user'@'%' IDENTIFIED BY '{PASSWORD}'"))
            else:
                conn.execute(text("DROP ROLE IF EXISTS pl_pw_user"))
                conn.execute(text(f"CREATE ROLE pl_pw_user LOGIN PASSWORD '{PASSWORD}'"))
        engine.dispose()
    yield "pl_pw_user"
    for backend in SERVERS:
        engine = create_engine(admin_url(backend), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP USER IF EXISTS 'pl_pw_user'@'%'" if backend == "mysql" else "DROP ROLE pl_pw_user"))
        engine.dispose()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def assert_one_line_naming(exc: BaseException, host_port: str, database: str, *secrets: str) -> None:
    message = str(exc)
    assert "\n" not in message
    assert host_port in message and f"database {database!r}" in message, message
    for secret in secrets:
        assert secret not in message, message


@pytest.mark.parametrize("backend", SERVERS)
def test_unreachable_host(backend: str) -> None:
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()  # nothing listens there now
    with pytest.raises(StoreUnavailableError) as caught:
        open_store(backend, port=free, database="pl_x", password=SecretStr(PASSWORD), connect_timeout=2)
    assert_one_line_naming(caught.value, f"127.0.0.1:{free}", "pl_x", PASSWORD)
    assert "refused" in str(caught.value).lower()


@pytest.mark.parametrize("backend", SERVERS)
def test_silent_server_fails_within_the_connect_timeout(backend: str, silent_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        open_store(backend, port=silent_server, database="pl_x", connect_timeout=2)
    elapsed = time.monotonic() - started
    assert_one_line_naming(caught.value, f"127.0.0.1:{silent_server}", "pl_x")
    assert elapsed < 15, f"took {elapsed:.1f}s with connect_timeout=2"


@pytest.mark.parametrize("backend", SERVERS)
def test_wrong_password(backend: str, password_user: str) -> None:
    wrong = "Wr0ng-" + PASSWORD
    port = admin_url(backend).port
    with pytest.raises(StoreUnavailableError) as caught:
        open_store(backend, port=port, database="pl_x", username=password_user, password=SecretStr(wrong))
    assert_one_line_naming(caught.value, f"127.0.0.1:{port}", "pl_x", PASSWORD, wrong)
    text_ = str(caught.value).lower()
    assert "denied" in text_ or "authentication failed" in text_


@pytest.mark.parametrize("backend", SERVERS)
def test_missing_database_without_create(backend: str) -> None:
    port = admin_url(backend).port
    with pytest.raises(StoreUnavailableError, match="does not exist; create it or set create_database=true") as caught:
        open_store(
            backend,
            port=port,
            database="pl_missing_db",
            create_database=False,
            username=admin_url(backend).username,
        )
    assert_one_line_naming(caught.value, f"127.0.0.1:{port}", "pl_missing_db")


@pytest.mark.parametrize("backend", SERVERS)
def test_ssl_failure(backend: str) -> None:
    """The servers here run without TLS: asking for it must fail clearly."""
    port = admin_url(backend).port
    ssl = {"ssl_ca": "/etc/ssl/certs/ca-certificates.crt"} if backend == "mysql" else {"sslmode": "require"}
    with pytest.raises(StoreUnavailableError) as caught:
        open_store(backend, port=port, database="pl_x", username=admin_url(backend).username, **ssl)
    assert_one_line_naming(caught.value, f"127.0.0.1:{port}", "pl_x")
    assert "ssl" in str(caught.value).lower()


@pytest.mark.parametrize("backend", SERVERS)
def test_cli_prints_unavailable_store_without_traceback(
    backend: str, monkeypatch: pytest.MonkeyPatch, password_user: str
) -> None:
    monkeypatch.setenv("PL_TEST_PW", "Wr0ng-" + PASSWORD)
    runner = CliRunner()
    port = str(admin_url(backend).port)
    assert (
        runner.invoke(
            cli,
            [
                "metadata-store",
                "register",
                "bad",
                f"--flavor={backend}",
                f"--port={port}",
                "--database=pl_x",
                f"--username={password_user}",
                "--password=${env:PL_TEST_PW}",
            ],
        ).exit_code
        == 0
    )
    assert runner.invoke(cli, ["stack", "register", "bad", "-m", "bad", "--set"]).exit_code == 0
    result = runner.invoke(cli, ["run", "list"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"127.0.0.1:{port}" in result.stderr and "Wr0ng-" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", SERVERS)
def test_quickstart_flow_records_into_the_server(
    backend: str, server_urls: dict[str, URL], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """register -> stack register -> stack set -> run a pipeline -> `run list` reads it."""
    url = server_urls[backend]
    monkeypatch.setenv("MYSQL_PASSWORD", url.password or "")
    values = server_config(backend, url)
    args = [f"--{k}={v}" for k, v in values.items() if k != "password"]
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "metadata-store",
            "register",
            "prod",
            f"--flavor={backend}",
            *args,
            "--password=${env:MYSQL_PASSWORD}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["stack", "register", "prod", "-m", "prod"]).exit_code == 0
    assert runner.invoke(cli, ["stack", "set", "prod"]).exit_code == 0
    run = P.training.with_options(run_name=f"server-{backend}-{{n}}")(lr=0.3)
    assert run.stack["metadata_store"]["flavor"] == backend
    listed = runner.invoke(cli, ["run", "list", "--pipeline", "training"])
    assert listed.exit_code == 0 and run.name in listed.stdout
    again = Client().get_run(run.name)
    assert again.steps["train"].outputs["model"].read() == {"w": 0.3, "n": 4}
    assert again.steps["train"].metadata["accuracy"] == pytest.approx(0.8)
    described = runner.invoke(cli, ["metadata-store", "describe", "prod"])
    assert "${env:MYSQL_PASSWORD}" in described.stdout
    assert runner.invoke(cli, ["metadata-store", "migrate", "prod"]).stdout.startswith("Schema already at")


@pytest.mark.skipif("mysql" not in SERVERS, reason="needs the MySQL/MariaDB server")
def test_mysql_database_with_a_case_insensitive_default_collation() -> None:
    """A database a DBA created with the server's defaults (latin1 or a *_ci collation): the
    schema still gets utf8mb4 with exact comparison, so `Run` and `run` are different names."""
    from pipeledger.models import RunCreate

    admin = create_engine(admin_url("mysql"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS pl_ci_collation"))
        conn.execute(text("CREATE DATABASE pl_ci_collation CHARACTER SET latin1 COLLATE latin1_swedish_ci"))
    try:
        store = open_store(
            "mysql",
            port=admin_url("mysql").port,
            database="pl_ci_collation",
            username=admin_url("mysql").username,
            create_database=False,
        )
        store.create_run(RunCreate(pipeline_name="p", name="Run"))
        store.create_run(RunCreate(pipeline_name="p", name="run"))
        store.create_run(RunCreate(pipeline_name="p", name="zürich ✓"))
        assert sorted(store.list_run_names()) == ["Run", "run", "zürich ✓"]
        store.close()
    finally:
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS pl_ci_collation"))
        admin.dispose()
