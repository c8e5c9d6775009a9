"""A server whose artifact store is S3 (moto's server, tests/s3.py), for clients that hold none of
the bucket's credentials: with signed URLs (the default on S3) the bytes go between the client and
the bucket directly, each URL short-lived and an upload bound to its sha256; with
``PIPELEDGER_SERVER_SIGNED_URLS=0`` they stream through the server. Either way the artifacts are
recorded at their ``s3://`` URIs, read back, cached, checked, deleted and collected as on a
local store, and no path outside the store's root is signed or served."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from pipeledger import Client
from pipeledger.cli.main import cli
from tests import pipelines as P
from tests.rest_server import ServerProcess
from tests.s3 import KEY_VARIABLE, SECRET_VARIABLE, TEST_KEY, TEST_SECRET, MotoS3
from tests.servers import rest_enabled
from tests.test_server_artifacts import register_team_stack

pytestmark = pytest.mark.skipif(not rest_enabled(), reason="rest is not among PIPELEDGER_TEST_BACKENDS")

API = "/api/v1/artifacts"


@pytest.fixture(scope="module", params=["signed", "streamed"])
def served(
    request: pytest.FixtureRequest, s3_server: MotoS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    """A server on sqlite whose artifact store is a new bucket; the store's ``s3://`` root."""
    bucket = s3_server.new_bucket()
    root = f"s3://{bucket}/artifacts"
    env = {KEY_VARIABLE: TEST_KEY, SECRET_VARIABLE: TEST_SECRET, "PIPELEDGER_SERVER_SIGNED_URL_SECONDS": "120"}
    if request.param == "streamed":
        env["PIPELEDGER_SERVER_SIGNED_URLS"] = "0"
    server = ServerProcess(
        "sqlite",
        tmp_path_factory.mktemp(f"s3-server-{request.param}"),
        env=env,
        artifact_store=[
            "--flavor=s3", f"--path={root}", f"--endpoint-url={s3_server.endpoint}",
            f"--key=${{env:{KEY_VARIABLE}}}", f"--secret=${{env:{SECRET_VARIABLE}}}", "--retries=2",
        ],
    )  # fmt: skip
    server.start()
    yield server, root
    server.stop()


def requests_logged(server: ServerProcess) -> list[str]:
    """The server's access log lines so far (``METHOD /path?query``)."""
    return re.findall(r'"([A-Z]+ /api/v1/[^ ]+) HTTP', server.log.read_text(errors="replace"))


def test_pipelines_write_and_read_the_bucket_without_its_credentials(
    served: tuple[ServerProcess, str], s3_server: MotoS3, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, root = served
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", KEY_VARIABLE, SECRET_VARIABLE):
        monkeypatch.delenv(variable, raising=False)  # the client has no way into the bucket but the server
    register_team_stack(server)
    before = len(requests_logged(server))
    first = P.training.with_options(run_name="s3-{n}")(lr=0.5)
    model = Client().get_run(first.name)["train"].outputs["model"]
    assert model.uri.startswith(root + "/stores/")  # the bucket's own URI: the server's gc and check see it
    bucket_fs = s3_server.filesystem()
    assert bucket_fs.exists(model.uri.removeprefix("s3://") + "/data.json")
    assert model.read() == {"w": 0.5, "n": 4}
    assert "loading 4 rows" in Client().get_run(first.name)["load"].logs
    second = P.training.with_options(run_name="s3-{n}")(lr=0.5)
    assert {step.status.value for step in Client().get_run(second.name)} == {"cached"}
    assert not (home / "artifacts").exists()  # nothing written on the client's side

    calls = requests_logged(server)[before:]
    signs = [c for c in calls if c.startswith("POST /api/v1/artifacts/sign")]
    through = [c for c in calls if c.startswith(("PUT /api/v1/artifacts/file", "GET /api/v1/artifacts/file"))]
    if server.env.get("PIPELEDGER_SERVER_SIGNED_URLS") == "0":
        assert not signs and through  # every byte through the server
    else:
        assert signs and not through  # every byte between the client and the bucket

    checked = CliRunner().invoke(cli, ["metadata-store", "check", "--deep"])
    assert checked.exit_code == 0, checked.output
    shown = Client().get_run(first.name)
    logs = shown["load"].record.logs_uri
    assert logs is not None and bucket_fs.exists(logs.removeprefix("s3://"))
    deleted = CliRunner().invoke(cli, ["run", "delete", first.name, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert not bucket_fs.exists(logs.removeprefix("s3://"))  # removed through the server
    assert bucket_fs.exists(model.uri.removeprefix("s3://") + "/data.json")  # the cached run still uses it
    collected = CliRunner().invoke(cli, ["gc", "--yes"])
    assert collected.exit_code == 0, collected.output
    assert CliRunner().invoke(cli, ["metadata-store", "check", "--deep"]).exit_code == 0


def sign(server: ServerProcess, path: str, method: str = "GET", sha256: str | None = None) -> httpx.Response:
    body = {"path": path, "method": method, "sha256": sha256}
    return httpx.post(f"{server.url}{API}/sign", json=body, timeout=30)


def test_signed_urls_are_short_lived_and_bound_to_their_bytes(served: tuple[ServerProcess, str]) -> None:
    server, root = served
    path = f"{root.removeprefix('s3://')}/stores/x/p/r-1/s-1/out/{'a' * 32}/data.bin"
    data = b"exactly these bytes"
    digest = hashlib.sha256(data).hexdigest()
    answer = sign(server, path, "PUT", digest)
    if server.env.get("PIPELEDGER_SERVER_SIGNED_URLS") == "0":
        assert answer.status_code == 501 and "go through the server" in answer.text
        return
    assert answer.status_code == 200, answer.text
    signed = answer.json()
    query = parse_qs(urlsplit(signed["url"]).query)
    assert query["X-Amz-Expires"] == ["120"] and "X-Amz-Signature" in query
    assert "x-amz-checksum-sha256" in query["X-Amz-SignedHeaders"][0]  # the checksum is part of the signature
    assert TEST_SECRET not in signed["url"]
    # S3 refuses a body whose sha256 differs from the signed header; moto's server checks neither
    # signatures nor checksums, so what is checked here is what the URL binds, not the refusal.
    assert signed["headers"] == {"x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(data).digest()).decode()}
    assert httpx.put(signed["url"], content=data, headers=signed["headers"], timeout=30).status_code == 200
    got = httpx.get(sign(server, path).json()["url"], timeout=30)
    assert got.status_code == 200 and got.content == data
    assert sign(server, path, "PUT").status_code == 400  # an upload needs its sha256
    assert sign(server, path, "DELETE").status_code == 400


def test_no_path_outside_the_bucket_root_is_signed_or_served(served: tuple[ServerProcess, str]) -> None:
    server, root = served
    base = root.removeprefix("s3://")
    bucket = base.split("/", 1)[0]
    for path in (
        f"{base}/../secret",
        f"{base}/stores/../../other/x",
        f"{base}/stores//x",
        f"{base}/./x",
        f"{bucket}/elsewhere/x",
        "other-bucket/artifacts/x",
        f"{base}x/y",
        f"{base}/x#/../../y",
        f"/{base}/x",
    ):
        assert sign(server, path).status_code == 400, path
        for route, params in (("file", {"path": path}), ("stat", {"path": path}), ("hash", {"path": path})):
            answer = httpx.get(f"{server.url}{API}/{route}", params=params, timeout=30)
            assert answer.status_code == 400, (route, path, answer.text)
        removed = httpx.post(f"{server.url}{API}/remove", json={"path": path, "recursive": True}, timeout=30)
        assert removed.status_code == 400, (path, removed.text)
