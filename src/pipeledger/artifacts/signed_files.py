"""The files of a pipeledger server whose artifact store is object storage (S3, GCS), for clients
that hold none of its credentials (the ``rest`` artifact-store flavor, when the server says its
store is not on its disk).

Paths and URIs are the bucket's own (``s3://bucket/prefix/stores/...``), exactly as the server
would record them, so its ``gc`` and ``check`` see every file. Stat, listings, hashes and removals
are calls to the server (:class:`~pipeledger.artifacts.server_files.ServerFileSystem`). The
bytes: on S3, the client asks the server to sign one URL per object (``POST
/api/v1/artifacts/sign``, valid for minutes) and moves the object with it directly, an upload
bound to its sha256 (S3 refuses other bytes); without signing (GCS), the bytes stream through
the server, which checks the sha256 on arrival. A signed request that fails is signed again and
retried within the transport's retry window (an expired URL, a dropped connection, a 5xx).
"""

from __future__ import annotations

import tempfile
import time
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from pipeledger.artifacts.server_files import CHUNK, ServerFileSystem
from pipeledger.exceptions import ArtifactStoreUnavailableError
from pipeledger.metadata_store.rest.transport import Transport

_PROTOCOLS = {"s3": ("s3", "s3a"), "gs": ("gs", "gcs"), "gcs": ("gs", "gcs")}


class ObjectServerFileSystem(ServerFileSystem):
    """A server's object-storage artifact store, reached through the server (and signed URLs)."""

    protocol: Any = ("s3", "s3a")
    records_local_paths = False
    #: Paths are checked by the server: :meth:`ArtifactStore.path_inside` does not resolve them here.
    served = True

    def __init__(self, transport: Transport, *, signed_urls: bool, **kwargs: Any) -> None:
        super().__init__(transport, **kwargs)
        self.signed_urls = signed_urls
        self._direct: httpx.Client | None = None

    @property
    def direct(self) -> httpx.Client:
        """The HTTP client of signed requests: no credentials of the server's, its own connections."""
        if self._direct is None:
            self._direct = httpx.Client(timeout=self.transport.http.timeout)
        return self._direct

    def rm_file(self, path: str) -> None:
        self._request("POST", "remove", json={"path": self._strip_protocol(path), "recursive": False})

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> IO[bytes]:
        if "r" in mode and self.signed_urls:
            return self._signed_download(self._strip_protocol(path))
        return super()._open(path, mode, **kwargs)

    def upload(self, path: str, source: IO[bytes], sha256: str) -> None:
        if not self.signed_urls:
            super().upload(path, source, sha256)
            return

        def send(signed: dict[str, Any]) -> httpx.Response:
            source.seek(0)
            return self.direct.put(signed["url"], content=_chunks(source), headers=signed["headers"])

        self._signed("PUT", path, send, sha256)

    def _signed_download(self, path: str) -> IO[bytes]:
        copy = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it

        def fetch(signed: dict[str, Any]) -> httpx.Response:
            copy.seek(0)
            copy.truncate()
            with self.direct.stream("GET", signed["url"]) as answer:
                if answer.status_code == 200:
                    for chunk in answer.iter_bytes(CHUNK):
                        copy.write(chunk)
                else:
                    answer.read()
                return answer

        try:
            self._signed("GET", path, fetch, None)
        except BaseException:
            copy.close()
            raise
        copy.seek(0)
        return copy

    def _signed(self, method: str, path: str, send: Any, sha256: str | None) -> httpx.Response:
        """Sign ``method`` on ``path`` with the server and ``send`` the request; sign again and
        retry (within the retry window) on a dropped connection, a 5xx or an expired URL (403)."""
        deadline = time.monotonic() + self.transport.retry_window
        delay = 0.05
        while True:
            signed = self._request("POST", "sign", json={"path": path, "method": method, "sha256": sha256}).json()
            try:
                response: httpx.Response = send(signed)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return response
                if response.status_code == 404:
                    raise FileNotFoundError(f"no object at {path}")
                if response.status_code not in (403, 500, 502, 503, 504):
                    raise OSError(
                        f"the object store refused {method} {path} with the URL the server signed: "
                        f"{response.status_code} {_reason(response)}"
                    )
                failure = f"{response.status_code} {_reason(response)}"
            if time.monotonic() + delay > deadline:
                host = urlsplit(str(signed.get("url", ""))).netloc
                raise ArtifactStoreUnavailableError(
                    f"cannot {method} {path} at {host} with the URLs the server signed "
                    f"(retried for {self.transport.retry_window:.0f} s): {failure}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def object_filesystem(transport: Transport, uri: str, *, signed_urls: bool) -> ObjectServerFileSystem:
    """The filesystem of a server's object store at ``uri`` (``s3://bucket/prefix``, ``gs://...``)."""
    scheme = uri.split("://", 1)[0]
    protocols = _PROTOCOLS.get(scheme, (scheme,))
    kind = type(f"Served{scheme.title()}FileSystem", (ObjectServerFileSystem,), {"protocol": protocols})
    filesystem: ObjectServerFileSystem = kind(transport, signed_urls=signed_urls)
    return filesystem


def _chunks(source: IO[bytes]) -> Any:
    while chunk := source.read(CHUNK):
        yield chunk


def _reason(response: httpx.Response) -> str:
    text = response.text.strip()
    code = text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else ""
    return code or response.reason_phrase
