"""Artifact files through the server: clients without access to the server's artifact store.

Clients of the ``rest`` artifact-store flavor (:mod:`pipeledger.artifacts.server_files`) write
and read the server's artifact store with these routes; the paths they name are the server's own
(as recorded in artifact URIs), and none is trusted. When the store is object storage (S3, GCS),
the same routes work through its filesystem (:mod:`pipeledger.server.object_files`), and on S3
``POST /api/v1/artifacts/sign`` hands out short-lived signed URLs, so that the bytes go
between the client and the bucket directly. On a store on the server's own disk:

* every path must lie strictly inside the store's root: no ``.``/``..`` segment, no empty one,
  no backslash, NUL, ``#`` or ``?`` (``%``-encoded ones arrive decoded and are checked decoded),
  no symbolic link below the root (:meth:`ArtifactStore.path_inside` compares real paths);
  anything else is refused with 400 before the filesystem is touched;
* an upload (``PUT /api/v1/artifacts/file?path=``) is streamed into a temporary file beside its
  target, counted against the size limit (``$PIPELEDGER_SERVER_MAX_UPLOAD_BYTES``, 413 beyond)
  and hashed as it arrives; only when the sha256 matches the client's ``Content-SHA256`` header
  is it renamed into place (else 422, and nothing is left);
* downloads are streamed (``GET /api/v1/artifacts/file?path=``);
* who may read or write a path is decided by its pipeline's project
  (:mod:`pipeledger.server.security.files`): each route declares its rule and checks it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from pipeledger.artifacts.files import hash_tree
from pipeledger.artifacts.store import ArtifactStore
from pipeledger.permissions import file_mode, make_dirs, set_mode
from pipeledger.server import object_files
from pipeledger.server.auth import authorize, principal_of
from pipeledger.server.errors import ApiError
from pipeledger.server.security.access import Access
from pipeledger.server.security.files import check_list, check_read, check_write
from pipeledger.server.security.policy import Rule, authenticated
from pipeledger.server.security.principal import Role

#: The environment variable bounding one uploaded file, in bytes (default 5 GiB).
MAX_UPLOAD_VARIABLE = "PIPELEDGER_SERVER_MAX_UPLOAD_BYTES"
DEFAULT_MAX_UPLOAD = 5 << 30
#: The request header carrying an uploaded file's sha256 (hex).
HASH_HEADER = "Content-SHA256"
_REFUSED_CHARACTERS = ("\\", "\0", "#", "?")


class Move(BaseModel):
    """``POST /api/v1/artifacts/move``: rename ``source`` (a file or directory) to ``target``."""

    source: str
    target: str


class Sign(BaseModel):
    """``POST /api/v1/artifacts/sign``: a signed URL to ``GET`` or ``PUT`` (with its sha256) ``path``."""

    path: str
    method: str = "GET"
    sha256: str | None = None


class Remove(BaseModel):
    """``POST /api/v1/artifacts/remove``: delete ``path`` (a directory only with ``recursive``)."""

    path: str
    recursive: bool = False


def max_upload() -> int:
    """The largest file an upload may carry, in bytes."""
    raw = os.environ.get(MAX_UPLOAD_VARIABLE, "")
    return int(raw) if raw.isdigit() else DEFAULT_MAX_UPLOAD


def artifact_store_of(request: Request) -> ArtifactStore:
    """The server's artifact store.

    Raises:
        ApiError: (501) the server has no artifact store.
    """
    store: ArtifactStore | None = getattr(request.app.state, "artifact_store", None)
    if store is None:
        raise ApiError(501, "UnsupportedOperationError", "this server serves no artifact store")
    return store


def inside(store: ArtifactStore, path: str, *, root: bool = False) -> str:
    """``path`` if it lies strictly inside the store's root (see the module docstring), or with
    ``root`` (listings), is the root itself.

    Raises:
        ApiError: (400) it does not, naming the path.
    """
    if not store.is_local:
        return object_files.inside(store, path, root=root)
    if root and path.rstrip("/") == store.root:
        return store.root
    parts = path.split("/")
    refused = (
        not path.startswith("/")
        or any(c in path for c in _REFUSED_CHARACTERS)
        or any(part in ("", ".", "..") for part in parts[1:])
        or store.path_inside(path) is None
    )
    if refused:
        raise ApiError(400, "ValueError", f"refusing path {path!r}: it is not inside the server's artifact store")
    return path


def access_of(request: Request) -> Access:
    """The checks of ``request``'s caller on the server's metadata store."""
    return Access(principal_of(request), request.app.state.store)


#: The rule of each route (their checks depend on the path: see :mod:`.security.files`).
READ_FILES = Rule(Role.READ, "custom", "reading artifact files")
WRITE_FILES = Rule(Role.WRITE, "custom", "writing artifact files")
LIST_FILES = Rule(Role.READ, "custom", "listing artifact files")
SIGN_FILES = Rule(Role.READ, "custom", "signing URLs of artifact files (GET: read, PUT: write)")


def artifact_router() -> APIRouter:
    """The routes of artifact files (every one through :func:`authorize`)."""
    router = APIRouter(prefix="/artifacts", tags=["artifacts"], dependencies=[Depends(authorize)])
    reads, writes = READ_FILES.operation(), WRITE_FILES.operation()

    @router.get(
        "/info",
        summary="Where the server's artifact store is, and the upload limit.",
        openapi_extra=authenticated("reading the artifact store's settings").operation(),
    )
    async def info(request: Request) -> dict[str, Any]:
        store = artifact_store_of(request)
        return {
            "root": store.root,
            "uri": store.uri_of(store.root),
            "name": store.name,
            "max_upload_bytes": max_upload(),
            "local": store.is_local,
            "signed_urls": not store.is_local and object_files.can_sign(store),
        }

    @router.put("/file", summary="Upload one file (streamed; its sha256 is checked on arrival).", openapi_extra=writes)
    async def upload(request: Request, path: str) -> dict[str, Any]:
        store = artifact_store_of(request)
        target = inside(store, path)
        await run_in_threadpool(check_write, access_of(request), store, target, "uploading files")
        expected = request.headers.get(HASH_HEADER, "").lower()
        if len(expected) != 64:
            raise ApiError(400, "ValueError", f"an upload needs the {HASH_HEADER} header (sha256, hex)")
        limit = max_upload()
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, "ValueError", f"{path}: {declared} bytes exceed the upload limit of {limit}")
        if not store.is_local:
            size = await object_files.receive(store, target, request.stream(), expected, limit)
            return {"size": size, "sha256": expected}
        return await _receive(store, target, request.stream(), expected, limit)

    @router.get("/file", summary="Download one file (streamed).", openapi_extra=reads)
    async def download(request: Request, path: str) -> Response:
        store = artifact_store_of(request)
        target = inside(store, path)
        await run_in_threadpool(check_read, access_of(request), store, target, f"no file at {path}")
        if not store.is_local:
            if not await run_in_threadpool(store.fs.isfile, target):
                raise ApiError(404, "NotFoundError", f"no file at {path}")
            return StreamingResponse(object_files.chunks_of(store, target), media_type="application/octet-stream")
        if not os.path.isfile(target):
            raise ApiError(404, "NotFoundError", f"no file at {path}")
        return FileResponse(target, media_type="application/octet-stream")

    @router.get("/stat", summary="Size, type and modification time of a path.", openapi_extra=reads)
    async def stat(request: Request, path: str) -> dict[str, Any]:
        store = artifact_store_of(request)
        target = inside(store, path, root=True)
        await run_in_threadpool(check_read, access_of(request), store, target, f"nothing at {path}")
        if not store.is_local:
            return await run_in_threadpool(object_files.stat, store, target, path)
        return await run_in_threadpool(_stat, target, path)

    @router.get("/list", summary="The entries of a directory.", openapi_extra=LIST_FILES.operation())
    async def listing(request: Request, path: str) -> list[dict[str, Any]]:
        store = artifact_store_of(request)
        target = inside(store, path, root=True)
        shown = await run_in_threadpool(check_list, access_of(request), store, target, f"no directory at {path}")
        if not store.is_local:
            return await run_in_threadpool(object_files.listing, store, target, shown)
        if not os.path.isdir(target):
            raise ApiError(404, "NotFoundError", f"no directory at {path}")
        names = sorted(name for name in os.listdir(target) if shown is None or name in shown)
        return [await run_in_threadpool(_stat, f"{target}/{name}", f"{path}/{name}") for name in names]

    @router.get("/hash", summary="Content hash and size of an artifact's files, as recorded.", openapi_extra=reads)
    async def content_hash(request: Request, path: str) -> dict[str, Any]:
        store = artifact_store_of(request)
        target = inside(store, path)
        await run_in_threadpool(check_read, access_of(request), store, target, f"nothing at {path}")
        if not store.is_local:
            return await run_in_threadpool(object_files.content_hash, store, target)
        if not os.path.exists(target):
            raise ApiError(404, "NotFoundError", f"nothing at {path}")
        digest, size, files = await run_in_threadpool(hash_tree, store.fs, target)
        return {"content_hash": digest, "size": size, "files": files}

    @router.post("/move", summary="Rename a file or directory inside the store.", openapi_extra=writes)
    async def move(request: Request, body: Move) -> dict[str, str]:
        store = artifact_store_of(request)
        source, target = inside(store, body.source), inside(store, body.target)
        access = access_of(request)
        for path in (source, target):
            await run_in_threadpool(check_write, access, store, path, "moving files")
        if not store.is_local:
            if not await run_in_threadpool(store.fs.exists, source):
                if await run_in_threadpool(store.fs.exists, target):
                    return {"moved": body.target}
                raise ApiError(404, "NotFoundError", f"nothing at {body.source}")
            await run_in_threadpool(object_files.move, store, source, target)
            return {"moved": body.target}
        if not os.path.exists(source):
            if os.path.exists(target):
                return {"moved": body.target}  # a retried move that was done
            raise ApiError(404, "NotFoundError", f"nothing at {body.source}")
        try:
            make_dirs(os.path.dirname(target), store.permissions)
            await run_in_threadpool(os.replace, source, target)
        except OSError as exc:
            raise ApiError(409, "OSError", f"cannot move {body.source} to {body.target}: {exc.strerror}") from None
        return {"moved": body.target}

    @router.post("/remove", summary="Delete a file, or a directory with recursive.", openapi_extra=writes)
    async def remove(request: Request, body: Remove) -> dict[str, bool]:
        store = artifact_store_of(request)
        target = inside(store, body.path)
        await run_in_threadpool(check_write, access_of(request), store, target, "removing files")
        if not store.is_local:
            return {"removed": await run_in_threadpool(object_files.remove, store, target, body.recursive)}
        try:
            if os.path.isdir(target) and not os.path.islink(target):
                if body.recursive:
                    await run_in_threadpool(shutil.rmtree, target)
                else:
                    os.rmdir(target)
            elif os.path.lexists(target):
                os.unlink(target)
            else:
                return {"removed": False}
        except OSError as exc:  # e.g. a directory that is not empty: the client's OSError
            raise ApiError(409, "OSError", f"cannot remove {body.path}: {exc.strerror}") from None
        return {"removed": True}

    @router.post(
        "/sign",
        summary="A short-lived signed URL to GET or PUT one object of the server's S3 artifact store.",
        openapi_extra=SIGN_FILES.operation(),
    )
    async def sign(request: Request, body: Sign) -> dict[str, Any]:
        store = artifact_store_of(request)
        method = body.method.upper()
        if method not in ("GET", "PUT"):
            raise ApiError(400, "ValueError", f"cannot sign {body.method!r}: give GET or PUT")
        target = inside(store, body.path)
        if method == "PUT":
            await run_in_threadpool(check_write, access_of(request), store, target, "uploading files")
        else:
            await run_in_threadpool(check_read, access_of(request), store, target, f"no file at {body.path}")
        if store.is_local:
            raise ApiError(
                501,
                "UnsupportedOperationError",
                "the server's artifact store is on its disk: files go through the server",
            )
        return await run_in_threadpool(object_files.sign, store, target, method, body.sha256)

    return router


def _stat(target: str, shown: str) -> dict[str, Any]:
    try:
        found = os.lstat(target)
    except FileNotFoundError:
        raise ApiError(404, "NotFoundError", f"nothing at {shown}") from None
    kind = "directory" if os.path.isdir(target) and not os.path.islink(target) else "file"
    return {"name": shown, "size": found.st_size, "type": kind, "mtime": found.st_mtime}


async def _receive(
    store: ArtifactStore, target: str, chunks: AsyncIterator[bytes], expected: str, limit: int
) -> dict[str, Any]:
    """Stream an upload into a temporary file beside ``target``; rename it into place if its
    sha256 is ``expected`` and it is at most ``limit`` bytes, else remove it and refuse."""
    directory = os.path.dirname(target)
    await run_in_threadpool(make_dirs, directory, store.permissions)
    partial = Path(directory) / f".upload-{os.urandom(8).hex()}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(partial, "xb") as sink:
            set_mode(partial, file_mode(store.permissions))
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "ValueError", f"the upload exceeds the limit of {limit} bytes")
                digest.update(chunk)
                sink.write(chunk)
        if digest.hexdigest() != expected:
            raise ApiError(
                422,
                "ArtifactIntegrityError",
                f"the upload to {target} hashes to sha256 {digest.hexdigest()}, not {expected}: it was "
                "changed or cut in transit; nothing was written",
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return {"size": size, "sha256": expected}
