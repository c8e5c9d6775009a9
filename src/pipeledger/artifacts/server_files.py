"""The files of a pipeledger server's artifact store, as an fsspec filesystem (the ``rest``
artifact-store flavor).

Paths are the server's own (``/srv/pipeledger/artifacts/stores/...``): they are recorded as
artifact URIs exactly as if the server had written them, so its ``gc`` and ``check`` see its
files. Uploads stream a local temporary file with its sha256 (the server checks it on arrival
and renames the file into place only if it matches); downloads stream into a temporary file.
Content hashes of artifacts are computed by the server (:meth:`ServerFileSystem.content_hash`).
Every call is retried within the transport's retry window: each is harmless twice (an upload
writes the same bytes, a move already done is done, a removal of nothing removes nothing).
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO, Any

import httpx
from fsspec import AbstractFileSystem

from pipeledger.metadata_store.rest.transport import RETRIED_STATUSES, Transport

#: The request header carrying an uploaded file's sha256 (the server's ``HASH_HEADER``).
HASH_HEADER = "Content-SHA256"
CHUNK = 1 << 20


class ServerFileSystem(AbstractFileSystem):
    """The artifact store of the pipeledger server behind ``transport``."""

    protocol = "pipeledger"
    cachable = False
    #: Paths are the server's own local paths, recorded as URIs as the server would record them.
    records_local_paths = True

    def __init__(self, transport: Transport, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transport = transport

    # ------------------------------------------------------------------ calls

    def _request(self, method: str, route: str, **kwargs: Any) -> httpx.Response:
        """One call, retried within the retry window; errors as pipeledger's (a missing path
        as ``FileNotFoundError``)."""
        transport = self.transport
        deadline = time.monotonic() + transport.retry_window
        delay = 0.05
        rewind = kwargs.pop("rewind", None)
        while True:
            if rewind is not None:
                kwargs["content"] = rewind()
            try:
                response = transport.http.request(method, f"/artifacts/{route}", **kwargs)
            except httpx.TransportError as exc:
                failure: Exception = exc  # sent or not (NOT_SENT), every call here may be sent again
            else:
                if response.status_code not in RETRIED_STATUSES:
                    if response.status_code == 404:
                        raise FileNotFoundError(str(transport._error(response)))
                    if response.status_code == 409:  # the filesystem refused (a directory not empty...)
                        raise OSError(str(response.json()["error"]["message"]))
                    if response.status_code >= 400:
                        raise transport._error(response)
                    return response
                failure = transport._error(response)
            if time.monotonic() + delay > deadline:
                raise transport._unavailable(failure, tried=f" (retried for {transport.retry_window:.0f} s)") from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def server_info(self) -> dict[str, Any]:
        """The server's artifact store: its ``root``, ``name`` and ``max_upload_bytes``."""
        found: dict[str, Any] = self._request("GET", "info").json()
        return found

    # ---------------------------------------------------------------- fsspec

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        found: dict[str, Any] = self._request("GET", "stat", params={"path": self._strip_protocol(path)}).json()
        return found

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        entries: list[dict[str, Any]] = self._request(
            "GET", "list", params={"path": self._strip_protocol(path).rstrip("/")}
        ).json()
        return entries if detail else [entry["name"] for entry in entries]

    def modified(self, path: str) -> datetime:
        return datetime.fromtimestamp(self.info(path)["mtime"], tz=timezone.utc)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Nothing to do: the server makes directories as files arrive."""

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Nothing to do: the server makes directories as files arrive."""

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        body = {"source": self._strip_protocol(path1), "target": self._strip_protocol(path2)}
        self._request("POST", "move", json=body)

    def rm(self, path: str, recursive: bool = False, maxdepth: int | None = None) -> None:
        paths = path if isinstance(path, list) else [path]
        for one in paths:
            self._request("POST", "remove", json={"path": self._strip_protocol(one), "recursive": recursive})

    def rmdir(self, path: str) -> None:
        self._request("POST", "remove", json={"path": self._strip_protocol(path), "recursive": False})

    def hash_tree(self, path: str) -> tuple[str, int, dict[str, int]]:
        """The content hash, total size and file sizes of the files under ``path``, computed by
        the server as :func:`pipeledger.artifacts.files.hash_tree` computes them."""
        found = self._request("GET", "hash", params={"path": self._strip_protocol(path)}).json()
        return str(found["content_hash"]), int(found["size"]), {str(k): int(v) for k, v in found["files"].items()}

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> IO[bytes]:
        path = self._strip_protocol(path)
        if "r" in mode:
            return self._download(path)
        if "w" in mode or "x" in mode:
            return io.BufferedWriter(_Upload(self, path), buffer_size=CHUNK)
        raise ValueError(f"mode {mode!r} is not supported on the server's artifact store (use rb or wb)")

    def _download(self, path: str) -> IO[bytes]:
        copy = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
        try:
            with self.transport.http.stream("GET", "/artifacts/file", params={"path": path}) as answer:
                if answer.status_code == 404:
                    answer.read()
                    raise FileNotFoundError(str(self.transport._error(answer)))
                if answer.status_code >= 400:
                    answer.read()
                    raise self.transport._error(answer)
                for chunk in answer.iter_bytes(CHUNK):
                    copy.write(chunk)
        except httpx.TransportError as exc:
            copy.close()
            raise self.transport._unavailable(exc) from None
        except BaseException:
            copy.close()
            raise
        copy.seek(0)
        return copy

    def upload(self, path: str, source: IO[bytes], sha256: str) -> None:
        """Stream ``source`` (from its start) to ``path`` on the server, with its sha256."""

        def chunks() -> Iterator[bytes]:
            source.seek(0)
            while chunk := source.read(CHUNK):
                yield chunk

        self._request("PUT", "file", params={"path": path}, headers={HASH_HEADER: sha256}, rewind=chunks)


class _Upload(io.RawIOBase):
    """A file being written: kept in a local temporary file and hashed; uploaded on close."""

    def __init__(self, fs: ServerFileSystem, path: str) -> None:
        super().__init__()
        self.fs = fs
        self.path = path
        self.local = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.digest.update(chunk)
        self.local.write(chunk)
        return len(chunk)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.fs.upload(self.path, self.local, self.digest.hexdigest())
        finally:
            self.local.close()
            super().close()
