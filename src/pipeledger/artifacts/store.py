"""The artifact store: where step outputs and step logs live, on any fsspec filesystem.

Layout under the store's root (``<owner>`` is the id of the metadata store that recorded
the run, see :meth:`~pipeledger.metadata_store.base.MetadataStore.store_id`, or ``shared``
for a store without one)::

    <root>/stores/<owner>/<pipeline>/<run>-<run id>/<step>-<step run id>/<output>/<artifact id>/
    <root>/stores/<owner>/<pipeline>/<run>-<run id>/<step>-<step run id>/logs.txt
    <root>/stores/<owner>/<pipeline>/<run>-<run id>/<step>-<step run id>/.tmp-<artifact id>/
    <root>/stores/<owner>/.owner.json     the owning metadata store: its token and description

Names are made safe as path components and shortened; the ids make every path unique to
the object recorded there (two runs or steps whose names look alike never share a file).
An artifact is written into its ``.tmp-<artifact id>`` directory first and moved into place
when complete, so a recorded artifact never points at half-written files. Each metadata
store's files sit under its own ``stores/<owner>/`` directory, so ``gc`` can tell its own
files from another store's when several stores share one artifact store; ``.owner.json``
holds a secret token kept in the metadata store's database too, and a store removes files
there only when the two match.

Artifacts written before this layout (``<root>/<pipeline>/<run>/<step>/<output>/<artifact id>/``,
logs in ``<root>/<pipeline>/<run>/<step>/logs.txt``, temporary files in ``<root>/.tmp/``)
stay readable at their recorded URIs.

On the local filesystem everything the store writes is private to the user (files
``0600``, directories ``0700``, the root included) whatever the umask, or shared with
a group (``0660``/``2770``) with ``permissions="group"`` (:mod:`pipeledger.permissions`).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipeledger.artifacts.materializers import Materializer, MaterializerRegistry
from pipeledger.exceptions import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStoreOwnerError,
    MaterializerError,
)
from pipeledger.models import JSON, ArtifactRecord, StoreIdentity
from pipeledger.permissions import PRIVATE, Permissions, ensure_dir, file_mode, make_dirs, secure_tree, set_mode
from pipeledger.text import article

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


#: The directory, under ``stores/``, of the files of metadata stores without an id.
SHARED_OWNER = "shared"
#: In ``stores/<id>/``: which metadata store owns the directory (see :meth:`ArtifactStore.claim`).
OWNER_FILE = ".owner.json"


def path_segment(name: str, limit: int = 100) -> str:
    """``name`` made safe as one path component (at most ``limit`` characters; not unique:
    the layout adds ids where uniqueness matters)."""
    cleaned = _UNSAFE.sub("_", name).strip(".") or "_"
    return cleaned[:limit]


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

    def __init__(
        self, root: str, *, name: str = "default", permissions: Permissions = PRIVATE, filesystem: Any = None
    ) -> None:
        self.name = name
        self.permissions = permissions
        if filesystem is None:
            self.fs, self.root = fsspec.core.url_to_fs(str(root))
        else:  # another machine's files, served (the rest flavor): URIs are its paths
            self.fs, self.root = filesystem, str(root)
            serve_paths(self.root, filesystem)
        self.root = self.root.rstrip("/")
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self._prefix = "" if protocol in ("file", "local") or filesystem is not None else f"{protocol}://"
        self._local = isinstance(self.fs, LocalFileSystem)
        self._root_ready = False
        self._claimed: set[str] = set()

    def __repr__(self) -> str:
        return f"<ArtifactStore {self.name} {self.root}>"

    @property
    def is_local(self) -> bool:
        """Whether the files are on this machine's filesystem."""
        return self._local

    def claim(self, identity: StoreIdentity, description: Mapping[str, Any]) -> None:
        """Make ``stores/<id>/`` the metadata store ``identity``'s: write its ``.owner.json`` (the
        token, and for people which store it is) unless it exists. Checked once per process.

        Raises:
            ArtifactStoreOwnerError: ``.owner.json`` holds another token: another metadata store
                owns the directory (this database's id was copied or changed).
        """
        if identity.id in self._claimed:
            return
        path = f"{self.root}/stores/{identity.id}/{OWNER_FILE}"
        token = self.owner_token(identity.id)
        if token is None and not self.fs.exists(path):
            self._makedirs(path.rsplit("/", 1)[0])
            record = {"store_id": identity.id, "token": identity.token, "metadata_store": dict(description)}
            partial = f"{path}.{os.getpid()}-{os.urandom(4).hex()}.tmp"  # renamed: never read half-written
            with self.fs.open(partial, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=2, default=str)
            if self._local:  # the token is a secret of the store: private like the database
                set_mode(partial, file_mode(self.permissions))
            self.fs.mv(partial, path)
        elif token != identity.token:
            raise ArtifactStoreOwnerError(
                f"{self.uri_of(path)} names another metadata store as the owner of stores/{identity.id}/ "
                "(another token): this database's store id was copied or changed; give it its own "
                "artifact store, or restore its store_identity row"
            )
        self._claimed.add(identity.id)

    def owner_token(self, owner: str) -> str | None:
        """The token in ``stores/<owner>/.owner.json``; None if it is missing or unreadable."""
        try:
            with self.fs.open(f"{self.root}/stores/{owner}/{OWNER_FILE}", "r", encoding="utf-8") as f:
                token = json.load(f).get("token")
        except (OSError, ValueError, AttributeError):
            return None
        return token if isinstance(token, str) else None

    def uri_of(self, path: str) -> str:
        """The URI of ``path`` on this store's filesystem (as recorded)."""
        return f"{self._prefix}{path}"

    def owner_dir(self, owner: str | None) -> str:
        """The directory of the files of the metadata store ``owner`` (its id; None: ``shared``)."""
        return f"{self._prefix}{self.root}/stores/{owner or SHARED_OWNER}"

    def step_dir(self, owner: str | None, pipeline: str, run: str, run_id: str, step: str, step_run_id: str) -> str:
        """The directory of everything one step run writes (unique to the step run)."""
        run_part = f"{path_segment(run, 64)}-{run_id}"
        return f"{self.owner_dir(owner)}/{path_segment(pipeline)}/{run_part}/{path_segment(step, 64)}-{step_run_id}"

    def artifact_uri(self, step_dir: str, output: str, artifact_id: str) -> str:
        """Where the artifact ``artifact_id`` of a step output goes (``step_dir`` from :meth:`step_dir`)."""
        return f"{step_dir}/{path_segment(output)}/{artifact_id}"

    def logs_uri(self, step_dir: str) -> str:
        """Where a step run's captured output goes (``step_dir`` from :meth:`step_dir`)."""
        return f"{step_dir}/logs.txt"

    def path_inside(self, uri: str, under: str = "") -> str | None:
        """``uri``'s path on this store's filesystem if it lies strictly inside the root (and inside
        ``under``, a relative path such as ``stores/<owner>``), else None.

        The URI must use this store's filesystem and hold no ``.``/``..`` segment; a local path
        must not pass through a symbolic link below the root (its real path is checked), so
        nothing outside the store can be reached through it (a served store's paths are checked
        the same way by the server that holds them).
        """
        try:
            fs, path = filesystem_of(uri)
        except (ValueError, ImportError, OSError):
            return None
        if _protocols(fs) != _protocols(self.fs) or not path:
            return None
        parts = path.rstrip("/").split("/")
        if any(part in (".", "..") for part in parts[1:]):
            return None
        base = posixpath.join(self.root, under) if under else self.root
        path = posixpath.normpath(path)
        if not path.startswith(base.rstrip("/") + "/"):
            return None
        if "file" in _protocols(fs) or "local" in _protocols(fs):
            relative = os.path.relpath(path, self.root)
            if os.path.realpath(path) != os.path.join(os.path.realpath(self.root), relative):
                return None  # a symbolic link below the root: it may lead anywhere
        return path

    def write(self, value: Any, uri: str, artifact_id: str, registry: MaterializerRegistry) -> WrittenArtifact:
        """Materialize ``value`` at ``uri`` (via a temporary directory) and hash its files.

        Raises:
            MaterializerError: the materializer failed; nothing is left at ``uri``.
        """
        materializer = registry.for_value(value)
        target = self.fs._strip_protocol(uri)
        tmp = f"{target.rsplit('/', 2)[0]}/.tmp-{artifact_id}"  # in the step's directory, see the layout
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


#: Roots whose files another machine serves (root -> filesystem), see :func:`serve_paths`.
_SERVED: dict[str, Any] = {}


def serve_paths(root: str, filesystem: Any) -> None:
    """Read every URI under ``root`` through ``filesystem`` from now on (in this process).

    A ``rest`` artifact store records the server's own paths as URIs (so the server's ``gc`` and
    ``check`` find its files); on a client those paths are the server's, so reads of them
    (:func:`read_artifact`, :func:`read_text`, :func:`uri_exists`, :func:`hash_artifact`) go
    through the server."""
    _SERVED[root.rstrip("/")] = filesystem


def filesystem_of(uri: str) -> tuple[Any, str]:
    """The filesystem holding ``uri`` and the path on it: a served root's (see
    :func:`serve_paths`), else fsspec's for the URI."""
    if _SERVED and uri.startswith("/"):
        for root, filesystem in _SERVED.items():
            if uri == root or uri.startswith(root + "/"):
                return filesystem, uri
    return fsspec.core.url_to_fs(uri)


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


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
    fs, path = filesystem_of(artifact.uri)
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
    fs, path = filesystem_of(uri)
    try:
        with fs.open(path, "rb") as f:
            return bytes(f.read()).decode("utf-8", errors="replace")
    except FileNotFoundError as exc:
        raise ArtifactNotFoundError(f"no file at {uri}") from exc


def hash_artifact(uri: str) -> tuple[str, int]:
    """The content hash and size of the artifact files at ``uri`` (as recorded when written)."""
    fs, path = filesystem_of(uri)
    return _hash_tree(fs, path)


def uri_exists(uri: str) -> bool:
    """Whether anything exists at ``uri``."""
    if uri.startswith("/") and not _SERVED:  # a local path: skip fsspec's resolution
        return os.path.exists(uri)
    fs, path = filesystem_of(uri)
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
    served_hash = getattr(fs, "content_hash", None)
    if served_hash is not None and copy_to is None:  # hashed where the files are
        found: tuple[str, int] = served_hash(path)
        return found
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
