"""Artifacts through the server (the ``rest`` artifact-store flavor): recorded at the server's own
paths, streamed both ways, hashed on arrival, bounded in size; and no request reaches a file
outside the server's artifact store (path traversal, modelled on MLflow's CVE-2024-1483 and
CVE-2024-3848: ``..`` segments in nested artifact paths, and a ``#`` fragment hiding them)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pipeledger import Client
from pipeledger.cli.main import cli
from tests import pipelines as P
from tests.rest_server import ServerProcess
from tests.servers import rest_enabled

pytestmark = pytest.mark.skipif(not rest_enabled(), reason="rest is not among PIPELEDGER_TEST_BACKENDS")

API = "/api/v1/artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own (uploads limited to 64 KiB), with a secret beside its artifact store."""
    directory = tmp_path_factory.mktemp("artifact-server")
    running = ServerProcess("sqlite", directory, env={"PIPELEDGER_SERVER_MAX_UPLOAD_BYTES": str(64 * 1024)})
    running.start()
    (directory / "secret.txt").write_text("outside the store")
    yield running
    running.stop()


def register_team_stack(server: ServerProcess) -> None:
    runner = CliRunner()
    for args in (
        ["metadata-store", "register", "team", "--flavor=rest", f"--url={server.url}"],
        ["artifact-store", "register", "team", "--flavor=rest", f"--url={server.url}"],
        ["stack", "register", "team", "-m", "team", "-a", "team"],
        ["stack", "set", "team"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output


def test_runs_write_and_read_artifacts_through_the_server(server: ServerProcess, home: Path) -> None:
    register_team_stack(server)
    first = P.training.with_options(run_name="files-{n}")(lr=0.25)
    second = P.training.with_options(run_name="files-{n}")(lr=0.25)
    model = Client().get_run(first.name)["train"].outputs["model"]
    root = str(server.artifacts.resolve())
    assert model.uri.startswith(root + "/stores/")  # the server's own path: its gc and check see it
    assert os.path.isdir(model.uri)  # written on the server's disk (this test shares the machine)
    assert model.read() == {"w": 0.25, "n": 4}
    assert {step.status.value for step in Client().get_run(second.name)} == {"cached"}
    assert "loading 4 rows" in Client().get_run(first.name)["load"].logs
    assert not (home / "artifacts").exists()  # nothing written on the client's side
    checked = CliRunner().invoke(cli, ["metadata-store", "check", "--deep"])
    assert checked.exit_code == 0, checked.output
    # deleting a run from the client removes its files on the server, as a local store would
    shown = Client().get_run(first.name)
    load_output = shown["load"].output.uri
    assert os.path.exists(shown["load"].record.logs_uri or "")
    deleted = CliRunner().invoke(cli, ["run", "delete", first.name, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert os.path.exists(load_output)  # the cached second run still uses it
    logs = shown["load"].record.logs_uri
    assert logs is not None and logs.startswith(root) and not os.path.exists(logs)
    collected = CliRunner().invoke(cli, ["gc", "--yes"])
    assert collected.exit_code == 0, collected.output
    assert CliRunner().invoke(cli, ["metadata-store", "check", "--deep"]).exit_code == 0


def upload(server: ServerProcess, path: str, data: bytes, sha256: str | None = None) -> httpx.Response:
    digest = sha256 or hashlib.sha256(data).hexdigest()
    return httpx.put(f"{server.url}{API}/file", params={"path": path}, content=data, headers={"Content-SHA256": digest})


def test_an_upload_that_does_not_match_its_hash_leaves_nothing(server: ServerProcess) -> None:
    target = f"{server.artifacts.resolve()}/stores/x/changed.bin"
    answer = upload(server, target, b"what arrived", sha256=hashlib.sha256(b"what was sent").hexdigest())
    assert answer.status_code == 422 and answer.json()["error"]["type"] == "ArtifactIntegrityError"
    assert not os.path.exists(target)
    assert [p for p in os.listdir(os.path.dirname(target)) if p.startswith(".upload-")] == []


def test_uploads_beyond_the_size_limit_are_refused(server: ServerProcess) -> None:
    target = f"{server.artifacts.resolve()}/stores/x/big.bin"
    answer = upload(server, target, b"x" * (64 * 1024 + 1))
    assert answer.status_code == 413 and "limit" in answer.json()["error"]["message"]
    assert not os.path.exists(target)
    assert upload(server, target, b"x" * (64 * 1024)).status_code == 200
    fetched = httpx.get(f"{server.url}{API}/file", params={"path": target})
    assert fetched.status_code == 200 and fetched.content == b"x" * (64 * 1024)


def traversals(root: str) -> list[str]:
    """Paths that try to leave ``root`` (whose parent holds ``secret.txt``)."""
    return [
        f"{root}/../secret.txt",
        f"{root}/stores/run/step/../../../../secret.txt",  # CVE-2024-1483: .. in a nested artifact path
        f"{root}/stores#/../../secret.txt",  # CVE-2024-3848: a fragment hiding the .. segments
        f"{root}#/../secret.txt",
        f"{root}/./../secret.txt",
        f"{root}//../secret.txt",
        f"{root}\\..\\secret.txt",
        f"{root}/stores/a\x00/../../../secret.txt",
        f"{root}-evil/secret.txt",  # a sibling sharing the root's prefix
        f"{Path(root).parent}/secret.txt",
        "/etc/passwd",
        "../secret.txt",
        "secret.txt",
        f"{root}?/../secret.txt",
    ]


def test_no_route_reaches_outside_the_store(server: ServerProcess) -> None:
    root = str(server.artifacts.resolve())
    secret = Path(root).parent / "secret.txt"
    before = secret.read_bytes()
    for path in traversals(root):
        requests = [
            httpx.get(f"{server.url}{API}/file", params={"path": path}),
            httpx.get(f"{server.url}{API}/stat", params={"path": path}),
            httpx.get(f"{server.url}{API}/list", params={"path": path}),
            httpx.get(f"{server.url}{API}/hash", params={"path": path}),
            upload(server, path, b"overwritten"),
            httpx.post(f"{server.url}{API}/move", json={"source": path, "target": f"{root}/stores/moved"}),
            httpx.post(f"{server.url}{API}/move", json={"source": f"{root}/stores/x/big.bin", "target": path}),
            httpx.post(f"{server.url}{API}/remove", json={"path": path, "recursive": True}),
        ]
        for answer in requests:
            assert answer.status_code == 400, (path, answer.request.url, answer.status_code)
            assert "refusing path" in answer.json()["error"]["message"]
            assert b"outside the store" not in answer.content
    assert secret.read_bytes() == before and os.path.exists("/etc/passwd")
    # the root itself may be listed, never written, moved, removed or read as a file
    assert httpx.get(f"{server.url}{API}/list", params={"path": root}).status_code == 200
    for answer in (
        httpx.get(f"{server.url}{API}/file", params={"path": root}),
        upload(server, root, b"x"),
        httpx.post(f"{server.url}{API}/remove", json={"path": root, "recursive": True}),
        httpx.post(f"{server.url}{API}/move", json={"source": root, "target": f"{root}/stores/moved"}),
    ):
        assert answer.status_code == 400
    assert os.path.isdir(root)


def test_percent_encoded_traversals_are_decoded_then_refused(server: ServerProcess) -> None:
    root = str(server.artifacts.resolve())
    for encoded in ("%2e%2e%2fsecret.txt", "..%2fsecret.txt", "%2E%2E/secret.txt", "..%2F..%2Fsecret.txt"):
        answer = httpx.get(f"{server.url}{API}/file?path={root}/stores/{encoded}")
        assert answer.status_code == 400, encoded
    # encoded twice: decoded once, it is a (harmless) name inside the store, which does not exist
    twice = httpx.get(f"{server.url}{API}/file?path={root}/stores/%252e%252e/secret.txt")
    assert twice.status_code == 404 and b"outside the store" not in twice.content


def test_symbolic_links_inside_the_store_lead_nowhere(server: ServerProcess) -> None:
    root = server.artifacts.resolve()
    link = root / "stores" / "escape"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(root.parent)
    assert httpx.get(f"{server.url}{API}/file", params={"path": f"{link}/secret.txt"}).status_code == 400
    assert upload(server, f"{link}/planted.txt", b"planted").status_code == 400
    assert not (root.parent / "planted.txt").exists()
    removed = httpx.post(f"{server.url}{API}/remove", json={"path": f"{link}/secret.txt"})
    assert removed.status_code == 400 and (root.parent / "secret.txt").exists()
