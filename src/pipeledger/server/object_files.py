"""The ``/api/v1/artifacts`` routes' work on a server whose artifact store is object storage
(S3, GCS: not on the server's disk), through the store's own fsspec filesystem and credentials.

Clients of the ``rest`` artifact-store flavor never hold the bucket's credentials. On S3 they
move bytes with short-lived signed URLs the server hands out (:func:`sign`: ``GET`` to read one
object, ``PUT`` to write one, the ``PUT`` bound to the object's sha256 so S3 refuses other
bytes); everything else (stat, list, hash, remove) and, on GCS, the bytes too, goes through the
server, which calls the store. Paths are the store's own (``bucket/prefix/stores/...``) and none
is trusted: :func:`inside` admits only paths strictly under the store's root, without ``.``,
``..`` or empty segments.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

from pipeledger.artifacts.files import hash_tree
from pipeledger.artifacts.store import ArtifactStore
from pipeledger.server.errors import ApiError

#: The environment variable setting how long a signed URL stays valid, in seconds (default 300).
SIGNED_URL_SECONDS_VARIABLE = "PIPELEDGER_SERVER_SIGNED_URL_SECONDS"
DEFAULT_SIGNED_URL_SECONDS = 300
MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600  # S3's own limit for SigV4
#: Set to ``0`` to stream every file through the server (clients that cannot reach the bucket).
SIGNED_URLS_VARIABLE = "PIPELEDGER_SERVER_SIGNED_URLS"
_REFUSED = ("\\", "\0", "#", "?")


def signed_url_seconds() -> int:
    """How long the URLs :func:`sign` hands out stay valid."""
    raw = os.environ.get(SIGNED_URL_SECONDS_VARIABLE, "")
    seconds = int(raw) if raw.isdigit() else DEFAULT_SIGNED_URL_SECONDS
    return max(1, min(seconds, MAX_SIGNED_URL_SECONDS))


def can_sign(store: ArtifactStore) -> bool:
    """Whether the server hands out signed URLs for the store: its filesystem can sign them the
    way :func:`sign` does (s3fs), and ``$PIPELEDGER_SERVER_SIGNED_URLS`` is not ``0``."""
    if os.environ.get(SIGNED_URLS_VARIABLE, "1").strip() in ("0", "false", "no", "off"):
        return False
    protocols = store.fs.protocol if isinstance(store.fs.protocol, tuple | list) else (store.fs.protocol,)
    return "s3" in protocols and hasattr(store.fs, "get_s3")


def inside(store: ArtifactStore, path: str, *, root: bool = False) -> str:
    """``path`` if it lies strictly inside the object store's root (or is the root, with
    ``root``).

    Raises:
        ApiError: (400) it does not, naming the path.
    """
    base = store.root.rstrip("/")
    if root and path.rstrip("/") == base:
        return base
    relative = path[len(base) + 1 :] if path.startswith(base + "/") else None
    refused = (
        relative is None
        or any(c in path for c in _REFUSED)
        or any(part in ("", ".", "..") for part in relative.split("/"))
    )
    if refused:
        raise ApiError(400, "ValueError", f"refusing path {path!r}: it is not inside the server's artifact store")
    return path


def stat(store: ArtifactStore, target: str, shown: str) -> dict[str, Any]:
    """Size, type and modification time (0 when the store keeps none, e.g. a directory)."""
    try:
        found = store.fs.info(target)
    except FileNotFoundError:
        raise ApiError(404, "NotFoundError", f"nothing at {shown}") from None
    return _entry(store, found, shown)


def listing(store: ArtifactStore, target: str, shown: set[str] | None) -> list[dict[str, Any]]:
    """The entries of directory ``target``; only the names in ``shown`` unless it is None."""
    try:
        entries = store.fs.ls(target, detail=True, refresh=True)
    except FileNotFoundError:
        raise ApiError(404, "NotFoundError", f"no directory at {target}") from None
    found = []
    for entry in sorted(entries, key=lambda e: str(e["name"])):
        name = str(entry["name"]).rstrip("/")
        if name == target.rstrip("/"):
            continue
        if shown is None or name.rsplit("/", 1)[-1] in shown:
            found.append(_entry(store, entry, name))
    return found


def _entry(store: ArtifactStore, found: dict[str, Any], shown: str) -> dict[str, Any]:
    modified: Any = found.get("LastModified") or found.get("updated") or found.get("mtime")
    if isinstance(modified, str):  # GCS: an ISO 8601 time
        modified = datetime.fromisoformat(modified.replace("Z", "+00:00"))
    mtime = modified.timestamp() if isinstance(modified, datetime) else float(modified or 0)
    kind = "directory" if found.get("type") == "directory" else "file"
    return {"name": shown, "size": int(found.get("size") or 0), "type": kind, "mtime": mtime}


def content_hash(store: ArtifactStore, target: str) -> dict[str, Any]:
    """The content hash of the files under ``target``, read from the store."""
    if not store.fs.exists(target):
        raise ApiError(404, "NotFoundError", f"nothing at {target}")
    digest, size, files = hash_tree(store.fs, target)
    return {"content_hash": digest, "size": size, "files": files}


def remove(store: ArtifactStore, target: str, recursive: bool) -> bool:
    """Delete the object ``target``, or every object under it with ``recursive``; False if none."""
    fs = store.fs
    if not fs.exists(target):
        return False
    if fs.isdir(target):
        if not recursive:
            if fs.ls(target, refresh=True):
                raise ApiError(409, "OSError", f"cannot remove {target}: the directory is not empty")
            return True  # object storage has no empty directories to remove
        fs.rm(target, recursive=True)
    else:
        fs.rm_file(target)
    return True


def move(store: ArtifactStore, source: str, target: str) -> None:
    """Rename ``source`` (an object, or every object under a prefix) to ``target``."""
    store.fs.mv(source, target, recursive=True)


async def receive(store: ArtifactStore, target: str, chunks: AsyncIterator[bytes], expected: str, limit: int) -> int:
    """Stream an upload into a private temporary file; if its sha256 is ``expected`` and it is at
    most ``limit`` bytes, put it at ``target`` (one object, written whole or not at all)."""
    from starlette.concurrency import run_in_threadpool

    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(prefix="pipeledger-upload-") as spool:  # 0600
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "ValueError", f"the upload exceeds the limit of {limit} bytes")
            digest.update(chunk)
            spool.write(chunk)
        spool.flush()
        if digest.hexdigest() != expected:
            raise ApiError(
                422,
                "ArtifactIntegrityError",
                f"the upload to {target} hashes to sha256 {digest.hexdigest()}, not {expected}: it was "
                "changed or cut in transit; nothing was written",
            )
        await run_in_threadpool(store.fs.put_file, spool.name, target)
    return size


def chunks_of(store: ArtifactStore, target: str, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of object ``target``, streamed from the store."""
    with store.fs.open(target, "rb") as source:
        while chunk := source.read(size):
            yield chunk


def sign(store: ArtifactStore, target: str, method: str, sha256: str | None) -> dict[str, Any]:
    """A URL valid for :func:`signed_url_seconds` that lets its holder ``GET`` the object
    ``target`` or ``PUT`` it, and the headers the request must carry (a ``PUT`` is bound to
    ``sha256``: S3 refuses a body with another checksum).

    Raises:
        ApiError: (501) the store cannot sign URLs; (400) a ``PUT`` without ``sha256``.
    """
    if not can_sign(store):
        raise ApiError(
            501,
            "UnsupportedOperationError",
            f"this server does not sign URLs for its artifact store ({store.uri_of(store.root)}): "
            f"files go through the server (signing needs S3, and {SIGNED_URLS_VARIABLE} not 0)",
        )
    from fsspec.asyn import sync

    fs: Any = store.fs
    bucket, key, _ = fs.split_path(target)
    seconds = signed_url_seconds()
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    headers: dict[str, str] = {}
    if method == "PUT":
        if sha256 is None or len(sha256) != 64:
            raise ApiError(400, "ValueError", "a signed upload needs the file's sha256 (hex)")
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        params["ChecksumSHA256"] = checksum
        headers["x-amz-checksum-sha256"] = checksum

    async def presign() -> str:
        await fs.set_session()
        client = await fs.get_s3(bucket)
        operation = "put_object" if method == "PUT" else "get_object"
        url: str = await client.generate_presigned_url(operation, Params=params, ExpiresIn=seconds)
        return url

    return {"url": sync(fs.loop, presign), "method": method, "headers": headers, "expires_in": seconds}
