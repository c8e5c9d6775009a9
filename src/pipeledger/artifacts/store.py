"""The artifact store: where step outputs and step logs live, on any fsspec filesystem.

Layout under the store's root::

    <root>/<pipeline>/<run>/<step>/<output>/<artifact id>/   one directory per artifact
    <root>/<pipeline>/<run>/<step>/logs.txt                  the step's captured output
    <root>/.tmp/<artifact id>/                               an artifact being written

An artifact is written into ``.tmp`` first and moved into place when complete, so
a recorded artifact never points at half-written files.

On the local filesystem everything the store writes is private to the user (files
``0600``, directories ``0700``, the root included) whatever the umask, or shared with
a group (``0660``/``2770``) with ``permissions="group"`` (:mod:`pipeledger.permissions`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipeledger.artifacts.materializers import Materializer, MaterializerRegistry
from pipeledger.exceptions import ArtifactIntegrityError, ArtifactNotFoundError, MaterializerError
from pipeledger.models import JSON, ArtifactRecord
from pipeledger.permissions import PRIVATE, Permissions, ensure_dir, file_mode, make_dirs, secure_tree, set_mode
from pipeledger.text import article

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def path_segment(name: str) -> str:
    """``name`` made safe as one path component (at most 100 characters)."""
    cleaned = _UNSAFE.sub("_", name).strip(".") or "_"
    return cleaned[:100]


@dataclass(frozen=True)
class WrittenArtifact:
    """What writing a value produced: facts recorded with the artifact."""

    uri: str
    materializer: Materializer
    data_type: str
    content_hash: str
    size: int
    metadata: dict[str, JSON]


class ArtifactStore:
    """Reads and writes artifacts under ``root`` (a local path or an fsspec URL).

    Args:
        root: where artifacts live, e.g. ``~/.config/pipeledger/artifacts`` or ``s3://bucket/x``.
        name: the component's name, recorded with each artifact.
        permissions: modes of what is written on the local filesystem: ``private``
            (``0600``/``0700``) or ``group`` (``0660``/``2770``).
    """

    def __init__(self, root: str, *, name: str = "default", permissions: Permissions = PRIVATE) -> None:
        self.name = name
        self.permissions = permissions
        self.fs, self.root = fsspec.core.url_to_fs(str(root))
        self.root = self.root.rstrip("/")
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self._prefix = "" if protocol in ("file", "local") else f"{protocol}://"
        self._local = isinstance(self.fs, LocalFileSystem)
        self._root_ready = False

    def __repr__(self) -> str:
        return f"<ArtifactStore {self.name} {self.root}>"

    def run_dir(self, pipeline: str, run: str) -> str:
        """The directory holding everything a run wrote."""
        return f"{self._prefix}{self.root}/{path_segment(pipeline)}/{path_segment(run)}"

    def artifact_uri(self, pipeline: str, run: str, step: str, output: str, artifact_id: str) -> str:
        """Where the artifact ``artifact_id`` of a step output goes."""
        return f"{self.run_dir(pipeline, run)}/{path_segment(step)}/{path_segment(output)}/{artifact_id}"

    def logs_uri(self, pipeline: str, run: str, step: str) -> str:
        """Where a step's captured output goes."""
        return f"{self.run_dir(pipeline, run)}/{path_segment(step)}/logs.txt"

    def write(self, value: Any, uri: str, artifact_id: str, registry: MaterializerRegistry) -> WrittenArtifact:
        """Materialize ``value`` at ``uri`` (via a temporary directory) and hash its files.

        Raises:
            MaterializerError: the materializer failed; nothing is left at ``uri``.
        """
        materializer = registry.for_value(value)
        tmp = f"{self.root}/.tmp/{artifact_id}"
        target = self.fs._strip_protocol(uri)
        self._makedirs(tmp)
        try:
            metadata = materializer.save(value, self.fs, tmp)
            if self._local:
                secure_tree(tmp, self.permissions)
            content_hash, size = _hash_tree(self.fs, tmp)
            self._makedirs(target.rsplit("/", 1)[0])
            self.fs.mv(tmp, target, recursive=True)
        except Exception as exc:
            if self.fs.exists(tmp):
                self.fs.rm(tmp, recursive=True)
            if isinstance(exc, MaterializerError):
                raise
            raise MaterializerError(
                f"{materializer.import_path()} could not save {article(type(value).__name__)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        data_type = f"{type(value).__module__}.{type(value).__qualname__}"
        return WrittenArtifact(uri, materializer, data_type, content_hash, size, metadata or {})

    def write_text(self, uri: str, text: str) -> None:
        """Write a text file (e.g. a step's logs) as UTF-8, exactly (line endings and carriage
        returns are kept), creating parent directories."""
        path = self.fs._strip_protocol(uri)
        self._makedirs(path.rsplit("/", 1)[0])
        with self.fs.open(path, "wb") as f:
            f.write(text.encode("utf-8", errors="backslashreplace"))
        if self._local:
            set_mode(path, file_mode(self.permissions))

    def _makedirs(self, path: str) -> None:
        """Create a directory and its parents; locally with the store's directory mode (an
        existing root is restricted to it, once per store object)."""
        if not self._local:
            self.fs.makedirs(path, exist_ok=True)
            return
        if not self._root_ready:
            ensure_dir(self.root, self.permissions)
            self._root_ready = True
        make_dirs(path, self.permissions)


def read_artifact(artifact: ArtifactRecord, registry: MaterializerRegistry) -> Any:
    """Load an artifact's value from its URI with the materializer that wrote it.

    Every read goes through here (``ArtifactView.read()``, a step's inputs). When the
    materializer could run code from the files (``verify_before_load``: pickle, skops'
    trusted types), the files are first copied to a private temporary directory while
    their content hash is computed, the hash is compared with the recorded one, and the
    materializer loads the verified copy: a file swapped before or during the read is
    never loaded. Data-only formats are loaded in place, without hashing.

    Raises:
        ArtifactNotFoundError: the artifact's directory is gone.
        ArtifactIntegrityError: its files differ from the recorded content hash (nothing loaded).
        MaterializerError: its materializer cannot be loaded or fails.
    """
    fs, path = fsspec.core.url_to_fs(artifact.uri)
    materializer = registry.by_path(artifact.materializer)
    if materializer.verify_before_load:
        return _read_verified(artifact, materializer, fs, path)
    try:
        return materializer.load(fs, path, _import_type(artifact.data_type))
    except Exception as exc:
        if not fs.exists(path):  # checked only on failure: one stat less per input read
            raise ArtifactNotFoundError(
                f"artifact {artifact.id} is recorded but its files are missing at {artifact.uri}"
            ) from None
        raise MaterializerError(
            f"cannot read artifact {artifact.id} at {artifact.uri} with "
            f"{artifact.materializer}: {type(exc).__name__}: {exc}"
        ) from exc


def _read_verified(artifact: ArtifactRecord, materializer: Materializer, fs: Any, path: str) -> Any:
    """Load ``artifact`` from a private copy of its files whose content hash was checked."""
    with tempfile.TemporaryDirectory(prefix="pipeledger-verified-") as copy:  # 0700
        if not fs.exists(path):
            raise ArtifactNotFoundError(
                f"artifact {artifact.id} is recorded but its files are missing at {artifact.uri}"
            )
        if not artifact.content_hash:
            raise ArtifactIntegrityError(
                f"artifact {artifact.id} at {artifact.uri} has no recorded content hash (e.g. imported), and "
                f"{artifact.materializer} could run code from its files: not loading it"
            )
        found, _size = _hash_tree(fs, path, copy_to=copy)
        if found != artifact.content_hash:
            raise ArtifactIntegrityError(
                f"artifact {artifact.id} at {artifact.uri} was changed after it was recorded: its files hash to "
                f"sha256 {found}, the record says {artifact.content_hash}; not loading it with "
                f"{artifact.materializer}, which could run code from the files. Restore the files or delete the run"
            )
        try:
            return materializer.load(LocalFileSystem(), copy, _import_type(artifact.data_type))
        except Exception as exc:
            raise MaterializerError(
                f"cannot read artifact {artifact.id} at {artifact.uri} with "
                f"{artifact.materializer}: {type(exc).__name__}: {exc}"
            ) from exc


def verify_artifact(artifact: ArtifactRecord) -> str | None:
    """The content hash of ``artifact``'s files if it differs from the recorded one, else None."""
    found, _size = hash_artifact(artifact.uri)
    return found if found != artifact.content_hash else None


def read_text(uri: str) -> str:
    """Read a text file (e.g. a step's logs) at ``uri``.

    Raises:
        ArtifactNotFoundError: the file does not exist.
    """
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        with fs.open(path, "rb") as f:
            return bytes(f.read()).decode("utf-8", errors="replace")
    except FileNotFoundError as exc:
        raise ArtifactNotFoundError(f"no file at {uri}") from exc


def hash_artifact(uri: str) -> tuple[str, int]:
    """The content hash and size of the artifact files at ``uri`` (as recorded when written)."""
    fs, path = fsspec.core.url_to_fs(uri)
    return _hash_tree(fs, path)


def uri_exists(uri: str) -> bool:
    """Whether anything exists at ``uri``."""
    if uri.startswith("/"):  # a local path: skip fsspec's resolution
        return os.path.exists(uri)
    fs, path = fsspec.core.url_to_fs(uri)
    return bool(fs.exists(path))


def _import_type(path: str) -> type | None:
    """The class named ``module.QualName``, or None when it cannot be imported."""
    import importlib

    module, _, qualname = path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError:
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, type) else None


def _hash_tree(fs: Any, path: str, copy_to: str | None = None) -> tuple[str, int]:
    """sha256 over a directory's files (relative names and contents, sorted) and their total size.

    With ``copy_to`` (a local directory), the files are also copied there as they are
    read: the copy is exactly what was hashed.
    """
    digest = hashlib.sha256()
    size = 0
    for file in sorted(fs.find(path)):
        rel = file[len(path) :].lstrip("/")
        digest.update(rel.encode() + b"\0")
        target = None
        if copy_to is not None:
            local = os.path.join(copy_to, *rel.split("/"))
            os.makedirs(os.path.dirname(local), mode=0o700, exist_ok=True)
            target = open(local, "xb")  # noqa: SIM115 - closed below
        try:
            with fs.open(file, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    if target is not None:
                        target.write(chunk)
        finally:
            if target is not None:
                target.close()
        digest.update(b"\0")
    return digest.hexdigest(), size
