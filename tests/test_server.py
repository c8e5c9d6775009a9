"""``pipeledger server``: the process, its routes, and the one dependency every route goes through.

The server runs as a real process (``tests/rest_server.py``) except in the handler tests at the
end, which use FastAPI's in-process client to swap the caller check.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from pipeledger.cli.main import cli
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.rest.protocol import API_VERSION, NOT_ROUTED, VERSION_HEADER, contract_methods
from pipeledger.server.app import create_app
from pipeledger.server.auth import PUBLIC_ROUTES, authorize
from pipeledger.server.errors import ApiError
from tests.rest_server import ServerProcess, free_port, pipeledger


@pytest.fixture
def server(rest_servers: object) -> ServerProcess:
    """The session's server in front of SQLite, emptied."""
    running: ServerProcess = rest_servers.get("sqlite")  # type: ignore[attr-defined]
    running.empty()
    return running


def public_contract_methods() -> set[str]:
    return {
        name
        for name in dir(MetadataStore)
        if not name.startswith("_") and callable(getattr(MetadataStore, name)) and name not in NOT_ROUTED
    }


def test_health_ready_and_versions(server: ServerProcess) -> None:
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["api_version"] == API_VERSION
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    info = httpx.get(server.url + "/api/v1/info").json()
    assert info["metadata_store"]["flavor"] == "sqlite"


def test_openapi_document_has_a_route_per_contract_method(server: ServerProcess) -> None:
    document = httpx.get(server.url + "/api/v1/openapi.json").json()
    routed = {path.removeprefix("/api/v1/store/") for path in document["paths"] if path.startswith("/api/v1/store/")}
    assert routed == public_contract_methods() == set(contract_methods())
    create_run = document["paths"]["/api/v1/store/create_run"]["post"]
    assert create_run["requestBody"]["content"]["application/json"]["schema"]["properties"]["run"] == {
        "$ref": "#/components/schemas/RunCreate"
    }
    assert {"RunCreate", "RunRecord", "StepRunRecord", "ArtifactRecord", "Status"} <= set(
        document["components"]["schemas"]
    )


def test_a_client_of_another_api_version_is_refused_naming_both(server: ServerProcess) -> None:
    answer = httpx.post(server.url + "/api/v1/store/list_runs", json={}, headers={VERSION_HEADER: "99"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "ApiVersionError"
    assert f"API version {API_VERSION}" in error["message"] and "API version 99" in error["message"]


def test_bad_arguments_are_one_clear_error(server: ServerProcess) -> None:
    unknown = httpx.post(server.url + "/api/v1/store/list_runs", json={"colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.json()["error"]["message"]
    not_json = httpx.post(server.url + "/api/v1/store/get_run", content=b"{")
    assert not_json.status_code == 422 and not_json.json()["error"]["type"] == "ValueError"
    missing = httpx.post(server.url + "/api/v1/store/get_run", json={"name_or_id": "nope"})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"
    assert "nope" in missing.json()["error"]["message"]


def test_refuses_a_non_loopback_host_without_insecure_no_auth(tmp_path: object) -> None:
    result = CliRunner().invoke(cli, ["server", "start", "--host", "0.0.0.0", "--port", str(free_port())])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0" in result.stderr and "--insecure-no-auth" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_refuses_a_port_in_use_and_half_a_tls_configuration(server: ServerProcess) -> None:
    taken = CliRunner().invoke(cli, ["server", "start", "--port", str(server.port)])
    assert taken.exit_code == 1 and f"cannot listen on 127.0.0.1:{server.port}" in taken.stderr
    half = CliRunner().invoke(cli, ["server", "start", "--port", str(free_port()), "--ssl-certfile", "/x.pem"])
    assert half.exit_code == 1 and "--ssl-keyfile" in half.stderr


def test_daemon_start_status_stop(tmp_path: object, home: object) -> None:
    from pathlib import Path

    home_path = Path(str(home))
    port = str(free_port())
    started = pipeledger(home_path, "server", "start", "--daemon", "--port", port)
    assert started.returncode == 0, started.stderr
    assert f"http://127.0.0.1:{port}" in started.stdout
    try:
        status = pipeledger(home_path, "server", "status")
        assert status.returncode == 0 and "is ready" in status.stdout
        again = pipeledger(home_path, "server", "start", "--daemon", "--port", str(free_port()))
        assert again.returncode == 1 and "already runs" in again.stderr
    finally:
        stopped = pipeledger(home_path, "server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    after = pipeledger(home_path, "server", "status")
    assert after.returncode == 1 and "no server" in after.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health")


# ------------------------------------------------------------------ handlers (in-process)


def test_every_api_route_goes_through_the_caller_check(tmp_path: object) -> None:
    """Swap :func:`authorize` for one refusing everyone: every route under /api/v1 refuses, so the
    authentication to come covers them all by changing that one function."""
    from pathlib import Path

    from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store

    app = create_app(lambda: open_sqlite_store(SqliteMetadataStoreConfig(path=str(Path(str(tmp_path)) / "s.db"))))

    async def refuse() -> None:
        raise ApiError(401, "NotAuthenticated", "who are you?")

    app.dependency_overrides[authorize] = refuse
    with TestClient(app, base_url="http://localhost") as client:
        paths = client.get("/api/v1/openapi.json").json()["paths"]  # the document is no API route
        api = [
            (method, path)
            for path, item in paths.items()
            if path.startswith("/api/v1/") and path not in PUBLIC_ROUTES
            for method in item
        ]
        assert len(api) == len(contract_methods()) + 1 + 9 + 16 + 2  # + /info, the artifact, identity and audit routes
        assert set(paths) >= PUBLIC_ROUTES  # login: checked by its body
        for method, path in api:
            answer = client.request(method.upper(), path, json={})
            assert answer.status_code == 401, path
            assert answer.json()["error"]["type"] == "NotAuthenticated"
        assert client.get("/health").status_code == 200  # outside the API: probes need no caller


def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    """``--ssl-certfile/--ssl-keyfile``: the rest flavor talks HTTPS, checking the certificate
    against ``ca_cert``; without it, the unknown certificate is refused in one line."""
    import subprocess

    from pipeledger.exceptions import StoreUnavailableError
    from pipeledger.metadata_store.rest import RestMetadataStore
    from pipeledger.metadata_store.rest.transport import Transport

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    (tmp_path / "server").mkdir()
    server = ServerProcess("sqlite", tmp_path / "server", tls=(cert, key)).start()
    try:
        assert server.url.startswith("https://")
        store = RestMetadataStore(Transport(server.url, verify=str(cert)))
        assert store.list_runs() == [] and store.server["api_version"] == API_VERSION
        store.close()
        with pytest.raises(StoreUnavailableError, match=f"cannot reach the pipeledger server at {server.url}"):
            RestMetadataStore(Transport(server.url))
    finally:
        server.stop()


def test_several_workers_answer_without_nagle_delays(tmp_path: Path) -> None:
    """With ``--workers 2`` uvicorn binds the socket itself and asyncio left Nagle's algorithm on:
    every response waited for the client's delayed ACK (>= 40 ms on Linux). No more."""
    import socket
    import statistics
    import time

    (tmp_path / "server").mkdir()
    server = ServerProcess("sqlite", tmp_path / "server", workers=2).start()
    try:
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        with httpx.Client(transport=transport) as client:
            times = []
            for _ in range(30):
                start = time.perf_counter()
                client.post(server.url + "/api/v1/store/count_runs", json={})
                times.append(time.perf_counter() - start)
        assert statistics.median(times) < 0.03, times
    finally:
        server.stop()
