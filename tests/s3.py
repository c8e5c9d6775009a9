"""An S3 endpoint for the tests: moto's S3 server (``moto.server.ThreadedMotoServer``) on
127.0.0.1, the way s3fs's own tests run. The code under test talks S3 over HTTP to it exactly
as to AWS; nothing of boto or s3fs is mocked.

:class:`FaultyHttpProxy` stands between a store and the server to answer the first requests
with ``503 Slow Down`` (S3's throttling answer) or to vanish, without touching the server.
"""

from __future__ import annotations

import http.client
import http.server
import logging
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from click.testing import CliRunner

from pipeledger.cli.main import cli

#: The key and secret the tests' stores give moto, through these environment variables.
KEY_VARIABLE, SECRET_VARIABLE = "PL_TEST_S3_KEY", "PL_TEST_S3_SECRET"
TEST_KEY, TEST_SECRET = "AKIAPIPELEDGERTEST", "pipeledger-test-secret-do-not-print"


class MotoS3:
    """moto's S3 (and IAM) server on a loopback port, for a test session."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.port = int(port)

    def filesystem(self) -> Any:
        """An s3fs filesystem on the server with the test credentials (to arrange and inspect)."""
        import s3fs

        return s3fs.S3FileSystem(key=TEST_KEY, secret=TEST_SECRET, endpoint_url=self.endpoint, skip_instance_cache=True)

    def new_bucket(self) -> str:
        """A new, empty bucket's name."""
        name = f"pl-{secrets.token_hex(6)}"
        self.filesystem().mkdir(name)
        return name

    @contextmanager
    def enforcing_credentials(self) -> Iterator[tuple[str, str]]:
        """While inside, the server checks credentials (moto accepts any by default); yields a key
        and secret of an IAM user it accepts."""
        import boto3
        import requests

        iam = boto3.client(
            "iam", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=TEST_KEY, aws_secret_access_key=TEST_SECRET,
        )  # fmt: skip
        user = f"u{secrets.token_hex(4)}"
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user, PolicyName="all",
            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
        )  # fmt: skip
        created = iam.create_access_key(UserName=user)["AccessKey"]
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
        try:
            yield created["AccessKeyId"], created["SecretAccessKey"]
        finally:
            requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)

    def stop(self) -> None:
        self._server.stop()


class FaultyHttpProxy:
    """An HTTP proxy to ``target_port`` on 127.0.0.1 that answers the first ``fail_first``
    requests with ``503 SlowDown`` (without forwarding them), counts what it sees, and can be
    stopped (connections refused afterwards, as by a stopped endpoint)."""

    def __init__(self, target_port: int, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests = 0
        self.failed = 0
        self.bytes_sent = 0  # bodies relayed to the client
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._connections.append(self.connection)

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests += 1
                    failing = proxy.failed < proxy.fail_first
                    if failing:
                        proxy.failed += 1
                if failing:
                    answer = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                        b"<Message>Please reduce your request rate.</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                head = self.command == "HEAD"  # its Content-Length is the object's: kept
                for name, value in response.getheaders():
                    dropped = (
                        ("transfer-encoding", "connection")
                        if head
                        else ("transfer-encoding", "content-length", "connection")
                    )
                    if name.lower() not in dropped:
                        self.send_header(name, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)
                    with proxy._lock:
                        proxy.bytes_sent += len(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, name="s3-proxy", daemon=True).start()

    def stop(self) -> None:
        """Stop answering: close the listening socket (new connections are refused) and every open
        connection (as a stopped endpoint would)."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def free_port() -> int:
    """A loopback port nothing listens on (an unreachable endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ok(*args: str) -> str:
    """Run a ``pipeledger`` command that must succeed; its output."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, f"pipeledger {' '.join(args)}: {result.output}"
    return result.output


def register_s3_stack(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, bucket: str, *, name: str = "team", prefix: str = "artifacts",
    key: str = TEST_KEY, secret: str = TEST_SECRET, extra: tuple[str, ...] = (),
) -> str:  # fmt: skip
    """Register artifact store ``name`` (flavor s3) on ``bucket`` and make it the active stack's
    (stack ``name``, with the default orchestrator and metadata store); its ``s3://`` root."""
    monkeypatch.setenv(KEY_VARIABLE, key)
    monkeypatch.setenv(SECRET_VARIABLE, secret)
    root = f"s3://{bucket}/{prefix}"
    ok(
        "artifact-store", "register", name, "--flavor=s3", f"--path={root}", f"--endpoint-url={endpoint}",
        f"--key=${{env:{KEY_VARIABLE}}}", f"--secret=${{env:{SECRET_VARIABLE}}}", "--retries=3",
        "--connect-timeout=2", *extra,
    )  # fmt: skip
    ok("stack", "register", name, "--artifact-store", name, "--metadata-store", "default", "--set")
    return root
