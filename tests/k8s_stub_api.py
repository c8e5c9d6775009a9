"""A stub of the Kubernetes API's REST surface, for tests on a machine without a cluster.

It is NOT Kubernetes: it stores the JSON bodies it is sent under their URL paths, and
answers GET / POST / PUT / PATCH (a shallow merge) / DELETE the way the API server's
REST conventions do (201 on create, 404 Status for a missing object, 409 for a duplicate,
``resourceVersion`` bumped on every write). No controller runs: a StatefulSet never gets
pods or a status. It checks that the client calls are well-formed and what they change.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-stub",
    "gitCommit": "0",
    "gitTreeState": "clean",
    "buildDate": "2024-01-01T00:00:00Z",
    "goVersion": "go1.22",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class StubApi:
    """The objects stored, by path (``/api/v1/namespaces/ns/secrets/name``), and the requests seen."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._version = 0
        self.lock = threading.Lock()

    def next_version(self) -> str:
        self._version += 1
        return str(self._version)


def _handler(api: StubApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str) -> None:
            self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                              "reason": reason, "message": f"{reason}: {self.path}"})  # fmt: skip

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _handle(self, method: str) -> None:
            path = self.path.split("?")[0].rstrip("/")
            with api.lock:
                api.requests.append((method, path))
                if path == "/version":
                    return self._send(200, VERSION)
                if method == "GET":
                    path = path.removesuffix("/status")
                    found = api.objects.get(path)
                    return self._send(200, found) if found else self._status(404, "NotFound")
                if method == "POST":
                    body = self._body()
                    target = f"{path}/{body['metadata']['name']}"
                    if target in api.objects:
                        return self._status(409, "AlreadyExists")
                    for key, value in body.pop("stringData", {}).items():  # write-only: kept base64-encoded
                        body.setdefault("data", {})[key] = base64.b64encode(value.encode()).decode()
                    body["metadata"]["resourceVersion"] = api.next_version()
                    api.objects[target] = body
                    return self._send(201, body)
                if path not in api.objects:
                    return self._status(404, "NotFound")
                if method == "DELETE":
                    del api.objects[path]
                    return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
                body = self._body()
                if (
                    method == "PUT"
                    and body["metadata"].get("resourceVersion") != (api.objects[path]["metadata"]["resourceVersion"])
                ):
                    return self._status(409, "Conflict")
                merged = body if method == "PUT" else {**api.objects[path], **body}
                merged["metadata"]["resourceVersion"] = api.next_version()
                api.objects[path] = merged
                return self._send(200, merged)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def stub_api_server() -> Iterator[tuple[str, StubApi]]:
    """Serve a :class:`StubApi` on ``http://127.0.0.1:<free port>``; yields (url, state)."""
    api = StubApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", api
    finally:
        server.shutdown()
        server.server_close()
