"""Hardened HTTP: the Host header, credentials in URLs, body limits, CORS, response headers,
query strings out of the access log, browser sessions with CSRF protection, and a server bound
beyond loopback refusing to start without authentication."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from pipeledger.cli.main import cli
from pipeledger.exceptions import ConfigError
from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
from pipeledger.server.app import create_app
from pipeledger.server.errors import install_handlers
from pipeledger.server.process import ServerOptions, check_bind, check_stack
from pipeledger.server.security import Principal
from pipeledger.server.security.directory import Directory
from pipeledger.server.security.http import HttpSettings, QuerylessAccessLog, host_name
from pipeledger.server.security.sessions import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    csrf_token_for,
    require_csrf,
    session_principal,
    start_session,
)
from tests.rest_server import free_port


def make_app(tmp_path: Path, settings: HttpSettings | None = None) -> FastAPI:
    return create_app(
        lambda: open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "s.db"))), settings=settings
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(make_app(tmp_path), base_url="http://localhost:8237") as found:
        yield found


# ------------------------------------------------------------------ Host header


def test_a_foreign_host_is_refused_loopback_names_pass(tmp_path: Path) -> None:
    app = make_app(tmp_path, HttpSettings(server_names=frozenset({"ledger.internal"})))
    with TestClient(app, base_url="http://localhost") as client:
        for host in ("localhost:8237", "127.0.0.1", "[::1]:8237", "LEDGER.internal:443", "ledger.internal"):
            answer = client.post("/api/v1/store/count_runs", json={}, headers={"Host": host})
            assert answer.status_code == 200, host
        evil = client.post("/api/v1/store/count_runs", json={}, headers={"Host": "evil.example:8237"})
        assert evil.status_code == 400
        message = evil.json()["error"]["message"]
        assert "'evil.example' is not a name of this server" in message and "--server-name" in message
        assert client.get("/health", headers={"Host": "10.1.2.3:8237"}).status_code == 200  # probes


def test_a_wildcard_server_name_accepts_any_host(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, HttpSettings(server_names=frozenset({"*"}))), base_url="http://x.y") as client:
        assert client.post("/api/v1/store/count_runs", json={}).status_code == 200


def test_host_names_are_parsed() -> None:
    assert host_name("[::1]:80") == "::1" and host_name("::1") == "::1"
    assert host_name("Example.COM:8237") == "example.com" and host_name("") == ""


# ------------------------------------------------------------------ credentials in URLs, limits


def test_a_credential_in_the_query_string_is_refused(client: TestClient) -> None:
    for name in ("token", "api_key", "Access_Token", "password"):
        answer = client.get(f"/api/v1/info?{name}=pl_x_y")
        assert answer.status_code == 400, name
        assert "Authorization header" in answer.json()["error"]["message"]


def test_request_bodies_are_bounded(tmp_path: Path) -> None:
    app = make_app(tmp_path, HttpSettings(max_request_bytes=1000))
    with TestClient(app, base_url="http://localhost") as client:
        small = client.post("/api/v1/store/list_runs", json={"limit": 5})
        assert small.status_code == 200
        declared = client.post("/api/v1/store/list_runs", content=b"{" + b" " * 2000 + b"}")
        assert declared.status_code == 413 and "1000 bytes" in declared.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"limit":'
            yield b" " * 2000
            yield b"5}"

        streamed = client.post("/api/v1/store/list_runs", content=chunks())
        assert streamed.status_code == 413 and streamed.json()["error"]["type"] == "ValueError"


def test_security_headers_and_no_cors_by_default(client: TestClient) -> None:
    answer = client.get("/api/v1/info", headers={"Origin": "https://evil.example"})
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert not any(name.startswith("access-control-") for name in answer.headers)
    preflight = client.options(
        "/api/v1/store/list_runs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_for_configured_origins_only(tmp_path: Path) -> None:
    app = make_app(tmp_path, HttpSettings(cors_origins=("https://ui.example",)))
    with TestClient(app, base_url="http://localhost") as client:
        good = client.get("/api/v1/info", headers={"Origin": "https://ui.example"})
        assert good.headers["access-control-allow-origin"] == "https://ui.example"
        bad = client.get("/api/v1/info", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in bad.headers


def test_query_strings_stay_out_of_the_access_log() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/artifacts/file?path=/a&token=pl_x_s3cret", "1.1", 400), None,
    )  # fmt: skip
    assert QuerylessAccessLog().filter(record)
    assert "s3cret" not in record.getMessage() and "/api/v1/artifacts/file?…" in record.getMessage()


# ------------------------------------------------------------------ sessions and CSRF


def session_app() -> FastAPI:
    app = FastAPI()
    install_handlers(app)
    who = Principal(name="alice", kind="user")

    @app.post("/login")
    async def login(response: Response) -> dict[str, str]:
        return {"csrf": start_session(response, "pl_k_secret", secure=True)}

    @app.post("/change")
    async def change(request: Request) -> dict[str, str | None]:
        found = await session_principal(request, lambda token: who if token == "pl_k_secret" else None)
        return {"who": found.name if found else None}

    @app.get("/read")
    async def read(request: Request) -> dict[str, bool]:
        require_csrf(request)
        return {"ok": True}

    return app


def test_session_cookies_are_httponly_secure_and_strict() -> None:
    with TestClient(session_app(), base_url="https://localhost") as client:
        answer = client.post("/login")
    cookies = {c.split("=", 1)[0]: c.lower() for c in answer.headers.get_list("set-cookie")}
    assert "httponly" in cookies[SESSION_COOKIE] and "httponly" not in cookies[CSRF_COOKIE]
    for cookie in cookies.values():
        assert "secure" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert answer.json()["csrf"] == csrf_token_for("pl_k_secret") != "pl_k_secret"
    assert "pl_k_secret" not in answer.json()["csrf"]


def test_a_cookie_authenticated_change_needs_the_csrf_token() -> None:
    with TestClient(session_app(), base_url="https://localhost") as client:
        csrf = client.post("/login").json()["csrf"]
        assert client.get("/read").status_code == 200  # safe methods need no token
        missing = client.post("/change")
        assert missing.status_code == 403 and CSRF_HEADER in missing.json()["error"]["message"]
        wrong = client.post("/change", headers={CSRF_HEADER: csrf_token_for("another session")})
        assert wrong.status_code == 403
        cross_site = client.post("/change", headers={CSRF_HEADER: csrf, "Origin": "https://evil.example"})
        assert cross_site.status_code == 403 and "cross-site" in cross_site.json()["error"]["message"]
        right = client.post("/change", headers={CSRF_HEADER: csrf, "Origin": "https://localhost"})
        assert right.status_code == 200 and right.json() == {"who": "alice"}
        client.cookies.clear()
        assert client.post("/change").json() == {"who": None}  # no cookie: no session


def test_the_server_authenticates_a_session_cookie_with_csrf(tmp_path: Path) -> None:
    """The server's own session authenticator: the cookie holds a login token of the directory;
    a change without the CSRF token is refused, with it accepted."""
    from pipeledger.server.security.sessions import open_session

    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "s.db")))
    directory = Directory.of_store(store)
    directory.create_first_admin("root")
    response = Response()
    csrf = open_session(directory, response, "root", secure=False)
    cookie = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    store.close()
    with TestClient(make_app(tmp_path), base_url="http://localhost") as client:
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get("/api/v1/auth/whoami").json()["name"] == "root"
        refused = client.post("/api/v1/store/list_runs", json={})
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
        assert client.post("/api/v1/store/list_runs", json={}, headers={CSRF_HEADER: csrf}).status_code == 200


# ------------------------------------------------------------------ binding beyond loopback


def test_binding_beyond_loopback_needs_principals_or_insecure_no_auth(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "team.db"
    runner = CliRunner()
    for command in (
        ["metadata-store", "register", "team", "--flavor=sqlite", f"--path={path}"],
        ["stack", "register", "team", "-m", "team"],
    ):
        assert runner.invoke(cli, command).exit_code == 0
    options = ServerOptions(host="0.0.0.0", port=free_port(), stack="team")
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0.*server init"):
        check_stack(options)
    check_bind(ServerOptions(host="0.0.0.0", insecure_no_auth=True), False)
    check_bind(ServerOptions(host="127.0.0.1"), False)
    refused = runner.invoke(cli, ["server", "start", "--stack", "team", "--host", "0.0.0.0", "--port", "1"])
    assert refused.exit_code == 1 and "pipeledger server init" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(path)))
    Directory.of_store(store).create_first_admin("root")
    store.close()
    assert "API keys" in check_stack(options)  # principals exist: accepted
