"""Reading an artifact's files as a stream of chunks, for downloads (the web UI's).

Memory stays at one chunk whatever the size. A file is named relative to the artifact's
directory and must be one the artifact holds (its manifest's or its directory's listing): no
path built from a request reaches the filesystem unchecked.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

from pipeledger.artifacts.files import artifact_files
from pipeledger.artifacts.store import store_for
from pipeledger.exceptions import ArtifactNotFoundError, NotFoundError
from pipeledger.models import ArtifactRecord

#: Bytes read (and yielded) at a time.
CHUNK = 1 << 20


def artifact_file_sizes(artifact: ArtifactRecord) -> dict[str, int]:
    """The artifact's files (names relative to its directory, sorted) and their sizes.

    Raises:
        ArtifactNotFoundError: its files are gone.
        ArtifactStoreUnavailableError: its artifact store cannot be used.
    """
    store = store_for(artifact.uri)
    path = store.path_of(artifact.uri)
    with store.failures(f"listing the files of artifact {artifact.id}"):
        if not store.exists(artifact.uri):
            raise ArtifactNotFoundError(
                f"artifact {artifact.id} is recorded but its files are missing at {artifact.uri}"
            )
        manifest = store.manifest(artifact.uri)
        if manifest is not None:
            return dict(sorted(manifest.files.items()))
        return {f[len(path) :].lstrip("/"): int(store.fs.size(f)) for f in artifact_files(store.fs, path)}


def iter_file(artifact: ArtifactRecord, name: str, sizes: dict[str, int] | None = None) -> Iterator[bytes]:
    """The bytes of the artifact's file ``name``, chunk by chunk (``sizes``: its listing, if read).

    Raises:
        NotFoundError: the artifact holds no file ``name`` (the message lists those it holds).
    """
    listing = sizes if sizes is not None else artifact_file_sizes(artifact)
    if name not in listing:
        shown = ", ".join(list(listing)[:20]) or "none"
        raise NotFoundError(f"artifact {artifact.id} has no file {name!r}; its files: {shown}")
    store = store_for(artifact.uri)
    target = f"{store.path_of(artifact.uri)}/{name}"
    return _chunks(store.fs, target)


def _chunks(fs: object, path: str) -> Iterator[bytes]:
    with fs.open(path, "rb") as f:  # type: ignore[attr-defined]
        while chunk := f.read(CHUNK):
            yield chunk


def iter_tar(artifact: ArtifactRecord, prefix: str) -> Iterator[bytes]:
    """Every file of the artifact as an uncompressed tar stream, under the directory ``prefix``:
    the header of each file (512 bytes, sizes from the listing), its bytes chunk by chunk, the
    padding to a 512-byte block, and the two empty blocks that end a tar.

    Raises:
        ArtifactNotFoundError: its files are gone.
    """
    sizes = artifact_file_sizes(artifact)
    for name, size in sizes.items():
        info = tarfile.TarInfo(f"{prefix}/{name}")
        info.size = size
        info.mode = 0o644
        info.mtime = int(artifact.created_at.timestamp())
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        written = 0
        for chunk in iter_file(artifact, name, sizes):
            if written + len(chunk) > size:  # a file that grew since it was listed: cut to its header
                chunk = chunk[: size - written]
            written += len(chunk)
            yield chunk
            if written >= size:
                break
        if written < size:  # shrank: pad with zeros so the archive stays readable
            yield b"\0" * (size - written)
        if size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
