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

Stores on a filesystem that moves a directory into place atomically (the local disk) rely
on that move. Object storage (S3, GCS) has no such move: there an artifact's files are
uploaded in place and a small manifest (:data:`~pipeledger.artifacts.files.MANIFEST`:
content hash, size, materializer) is written last, with one request; an artifact whose
manifest is missing does not exist for readers, cache hits, ``gc`` and
``metadata-store check``. See ``docs/artifact-stores.md`` for the contract every artifact
store keeps.

Artifacts written before this layout (``<root>/<pipeline>/<run>/<step>/<output>/<artifact id>/``,
logs in ``<root>/<pipeline>/<run>/<step>/logs.txt``, temporary files in ``<root>/.tmp/``)
stay readable at their recorded URIs.

On the local filesystem everything the store writes is private to the user (files
``0600``, directories ``0700``, the root included) whatever the umask, or shared with
a group (``0660``/``2770``) with ``permissions="group"`` (:mod:`pipeledger.permissions`).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipeledger.artifacts.files import MANIFEST, Manifest, artifact_files, hash_local_tree, hash_tree, import_type
from pipeledger.artifacts.materializers import Materializer, MaterializerRegistry
from pipeledger.exceptions import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStoreOwnerError,
    ArtifactStoreUnavailableError,
    MaterializerError,
    PipeledgerError,
)
from pipeledger.models import JSON, ArtifactRecord, StoreIdentity
from pipeledger.permissions import (
    PRIVATE,
    Permissions,
    dir_mode,
    ensure_dir,
    file_mode,
    make_dirs,
    secure_tree,
    set_mode,
)
from pipeledger.text import article

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ID = re.compile(r"[0-9a-f]{32}")


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


#: Explains an exception of the store's filesystem as the store being unusable (unreachable
#: endpoint, missing bucket, refused credentials), or returns None for any other error.
FailureExplainer = Callable[[BaseException], "str | None"]

# Artifact stores built in this process, by the URI of their root: reads of a recorded URI go
# through the store holding it (its filesystem carries the endpoint and credentials).
# Several stores may share a root (the same component built twice); the latest one alive is used.
_STORES: dict[str, list[weakref.ref[ArtifactStore]]] = {}


class ArtifactStore:
    """Reads and writes artifacts under ``root`` (a local path or an fsspec URL).

    The methods below are the artifact store contract (``docs/artifact-stores.md``; executable
    as :class:`pipeledger.testing.ArtifactStoreContract`): :meth:`write`, :meth:`read`,
    :meth:`exists`, :meth:`size`, :meth:`delete`, :meth:`list`, :meth:`content_hash`,
    :meth:`write_text` and :meth:`read_text`. A store that cannot be used (unreachable,
    no bucket, refused credentials) raises :class:`ArtifactStoreUnavailableError` from any of
    them, in one line naming the store, its location and the cause.

    Args:
        root: where artifacts live, e.g. ``~/.config/pipeledger/artifacts`` or ``s3://bucket/x``.
        name: the component's name, recorded with each artifact.
        permissions: modes of what is written on the local filesystem: ``private``
            (``0600``/``0700``) or ``group`` (``0660``/``2770``).
        fs: the fsspec filesystem to use (with its endpoint and credentials); default: the one
            ``root``'s protocol gives.
        manifests: write each artifact's files in place and its manifest last, and count an
            artifact as existing only with its manifest (object storage); default: when the
            filesystem is not local. Without, files are written to a temporary directory that
            is moved into place (atomic on a local filesystem).
        explain_failure: tells the store's unavailability (see :data:`FailureExplainer`) from
            other errors of ``fs``.
        upload_options: keyword arguments of ``fs.put_file`` for each uploaded file (with
            s3fs: ``chunksize`` and ``max_concurrency``, which bound the memory an upload takes).
        register: reads of URIs under ``root`` in this process use this store (its filesystem).
    """

    def __init__(
        self,
        root: str,
        *,
        name: str = "default",
        permissions: Permissions = PRIVATE,
        fs: Any = None,
        manifests: bool | None = None,
        explain_failure: FailureExplainer | None = None,
        upload_options: Mapping[str, Any] | None = None,
        register: bool = True,
    ) -> None:
        self.name = name
        self.permissions = permissions
        if fs is None:
            self.fs, self.root = fsspec.core.url_to_fs(str(root))
        else:
            self.fs, self.root = fs, fs._strip_protocol(str(root))
        self.root = self.root.rstrip("/")
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        # A served filesystem (the rest flavor) records the server's own local paths as URIs.
        local_paths = protocol in ("file", "local") or getattr(self.fs, "records_local_paths", False)
        self._prefix = "" if local_paths else f"{protocol}://"
        self._local = isinstance(self.fs, LocalFileSystem)
        self.manifests = (not self._local) if manifests is None else manifests
        self._explain = explain_failure
        self._upload_options = dict(upload_options or {})
        self._root_ready = False
        self._claimed: set[str] = set()
        if register:
            refs = _STORES.setdefault(self.uri_of(self.root), [])
            refs[:] = [r for r in refs if r() is not None] + [weakref.ref(self)]

    def __repr__(self) -> str:
        return f"<ArtifactStore {self.name} {self.uri_of(self.root)}>"

    # -- failures --------------------------------------------------------------------------

    def unavailable(self, exc: BaseException) -> str | None:
        """Why ``exc`` means the store cannot be used (None: it does not)."""
        if self._explain is None or isinstance(exc, PipeledgerError):
            return None
        return self._explain(exc)

    @contextmanager
    def failures(self, action: str) -> Iterator[None]:
        """Turn the filesystem's "store unusable" errors inside the block into one
        :class:`ArtifactStoreUnavailableError` line naming the store, where it is, the cause and
        ``action`` (what was being done); other errors pass unchanged."""
        try:
            yield
        except Exception as exc:
            cause = self.unavailable(exc)
            if cause is None:
                raise
            raise ArtifactStoreUnavailableError(
                f"artifact store {self.name!r} ({self.uri_of(self.root)}): {cause} (while {action})"
            ) from exc

    # -- ownership and layout --------------------------------------------------------------

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
            ArtifactStoreUnavailableError: the store cannot be used.
        """
        if identity.id in self._claimed:
            return
        path = f"{self.root}/stores/{identity.id}/{OWNER_FILE}"
        with self.failures("claiming its directory for the metadata store"):
            token = self.owner_token(identity.id)
            if token is None and not self.fs.exists(path):
                record = {"store_id": identity.id, "token": identity.token, "metadata_store": dict(description)}
                text = json.dumps(record, indent=2, default=str)
                if self.manifests:  # object storage: one request writes the whole object
                    self.fs.pipe_file(path, text.encode())
                else:
                    self._makedirs(path.rsplit("/", 1)[0])
                    partial = f"{path}.{os.getpid()}-{os.urandom(4).hex()}.tmp"  # renamed: never read half-written
                    with self.fs.open(partial, "w", encoding="utf-8") as f:
                        f.write(text)
                    if self._local:  # the token is a secret of the store: private like the database
                        set_mode(partial, file_mode(self.permissions))
                    self.fs.mv(partial, path)
            elif token != identity.token and not self._becomes_owner_token(identity):
                raise ArtifactStoreOwnerError(
                    f"{self.uri_of(path)} names another metadata store as the owner of stores/{identity.id}/ "
                    "(another token): this database's store id was copied or changed; give it its own "
                    "artifact store, or restore its store_identity row"
                )
        self._claimed.add(identity.id)

    def _becomes_owner_token(self, identity: StoreIdentity, tries: int = 20) -> bool:
        """Whether ``.owner.json`` reads as ``identity``'s token within about a second: another
        process claiming the directory at the same moment may be replacing it (through a server,
        a read can miss the file between two renames); a foreign token stays foreign."""
        for _ in range(tries):
            token = self.owner_token(identity.id)
            if token is not None:
                return token == identity.token
            time.sleep(0.05)
        return False

    def owner_token(self, owner: str) -> str | None:
        """The token in ``stores/<owner>/.owner.json``; None if it is missing or unreadable.

        Raises:
            ArtifactStoreUnavailableError: the store cannot be used.
        """
        with self.failures("reading the owner of its directory"):
            try:
                with self.fs.open(f"{self.root}/stores/{owner}/{OWNER_FILE}", "r", encoding="utf-8") as f:
                    token = json.load(f).get("token")
            except (OSError, ValueError, AttributeError) as exc:
                if self.unavailable(exc):
                    raise
                return None
        return token if isinstance(token, str) else None

    def uri_of(self, path: str) -> str:
        """The URI of ``path`` on this store's filesystem (as recorded)."""
        return f"{self._prefix}{path}"

    def path_of(self, uri: str) -> str:
        """The path of ``uri`` on this store's filesystem."""
        return str(self.fs._strip_protocol(uri)).rstrip("/")

    def holds(self, uri: str) -> bool:
        """Whether ``uri`` lies under this store's root (as a string; see :meth:`path_inside`)."""
        base = self.uri_of(self.root)
        return uri == base or uri.startswith(base + "/")

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
            if getattr(self.fs, "records_local_paths", False) and uri.startswith("/"):
                fs, path = self.fs, uri  # the server's path: it checks real paths itself
            elif getattr(self.fs, "served", False):  # a server's object store: no credentials here
                fs, path = self.fs, self.fs._strip_protocol(uri) if "://" in uri else ""
            else:
                fs, path = fsspec.core.url_to_fs(uri)
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

    # -- the contract ----------------------------------------------------------------------

    def write(self, value: Any, uri: str, artifact_id: str, registry: MaterializerRegistry) -> WrittenArtifact:
        """Materialize ``value`` at ``uri`` and hash its files.

        Atomic for readers: :meth:`exists` is False for ``uri`` until the artifact is complete.
        On a local filesystem the files are written to ``.tmp-<artifact id>`` beside the step's
        outputs and moved into place; on object storage they are written to a local temporary
        directory, hashed there, uploaded (multipart for large files, one part in memory at a
        time), and the manifest is written last.

        Raises:
            MaterializerError: the materializer failed; nothing is left at ``uri``.
            ArtifactStoreUnavailableError: the store cannot be used; what was uploaded has no
                manifest, so no artifact exists at ``uri`` (``gc`` removes the files later).
        """
        materializer = registry.for_value(value)
        target = self.path_of(uri)
        with self.failures(f"writing artifact {artifact_id}"):
            if self.manifests:
                content_hash, size, metadata = self._upload(value, materializer, target, artifact_id)
            elif self._local:
                content_hash, size, metadata = self._write_local(value, materializer, target, artifact_id)
            else:
                content_hash, size, metadata = self._write_and_move(value, materializer, target, artifact_id)
        data_type = _type_name(value)
        return WrittenArtifact(uri, materializer, data_type, content_hash, size, metadata or {})

    def _save(self, value: Any, materializer: Materializer, fs: Any, path: str) -> dict[str, JSON]:
        try:
            return materializer.save(value, fs, path) or {}
        except MaterializerError:
            raise
        except Exception as exc:
            if self.unavailable(exc):
                raise
            raise MaterializerError(
                f"{materializer.import_path()} could not save {article(type(value).__name__)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _write_and_move(
        self, value: Any, materializer: Materializer, target: str, artifact_id: str
    ) -> tuple[str, int, dict[str, JSON]]:
        tmp = f"{target.rsplit('/', 2)[0]}/.tmp-{artifact_id}"  # in the step's directory, see the layout
        self._makedirs(tmp)
        try:
            metadata = self._save(value, materializer, self.fs, tmp)
            if self._local:
                secure_tree(tmp, self.permissions)
            content_hash, size, _sizes = hash_tree(self.fs, tmp)
            self._makedirs(target.rsplit("/", 1)[0])
            self.fs.mv(tmp, target, recursive=True)
        except BaseException as exc:
            if self.fs.exists(tmp):
                self.fs.rm(tmp, recursive=True)
            if isinstance(exc, Exception) and not isinstance(exc, PipeledgerError) and not self.unavailable(exc):
                raise MaterializerError(
                    f"{materializer.import_path()} could not save {article(type(value).__name__)}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            raise
        return content_hash, size, metadata

    def _write_local(
        self, value: Any, materializer: Materializer, target: str, artifact_id: str
    ) -> tuple[str, int, dict[str, JSON]]:
        """:meth:`_write_and_move` on the local disk with the ``os`` module: the modes set and the
        files hashed in one walk, then one ``rename`` of the directory (atomic on one filesystem)."""
        step_dir, output_dir = target.rsplit("/", 2)[0], target.rsplit("/", 1)[0]
        tmp = f"{step_dir}/.tmp-{artifact_id}"  # in the step's directory, see the layout
        self._makedirs(tmp)
        try:
            metadata = self._save(value, materializer, self.fs, tmp)
            content_hash, size = hash_local_tree(tmp, dir_mode(self.permissions), file_mode(self.permissions))
            self._makedirs(output_dir)
            os.rename(tmp, target)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, Exception) and not isinstance(exc, PipeledgerError) and not self.unavailable(exc):
                raise MaterializerError(
                    f"{materializer.import_path()} could not save {article(type(value).__name__)}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            raise
        return content_hash, size, metadata

    def _upload(
        self, value: Any, materializer: Materializer, target: str, artifact_id: str
    ) -> tuple[str, int, dict[str, JSON]]:
        local = LocalFileSystem()
        with tempfile.TemporaryDirectory(prefix="pipeledger-upload-") as tmp:  # 0700
            metadata = self._save(value, materializer, local, tmp)
            content_hash, size, sizes = hash_tree(local, tmp)
            manifest = Manifest(
                artifact_id=artifact_id,
                content_hash=content_hash,
                size=size,
                materializer=materializer.import_path(),
                materializer_version=materializer.version,
                data_type=_type_name(value),
                files=sizes,
            )
            try:
                for rel in sizes:  # streamed from disk: s3fs uploads large files in parts
                    self.fs.put_file(os.path.join(tmp, *rel.split("/")), f"{target}/{rel}", **self._upload_options)
                self.fs.pipe_file(f"{target}/{MANIFEST}", manifest.to_json().encode())  # last: now it exists
            except BaseException:
                with suppress(Exception):  # the store may be gone: without a manifest the files are invisible
                    self.fs.rm(target, recursive=True)
                raise
        return content_hash, size, metadata

    def read(self, artifact: ArtifactRecord, registry: MaterializerRegistry) -> Any:
        """Load ``artifact``'s value with the materializer that wrote it (see :func:`read_artifact`).

        Raises:
            ArtifactNotFoundError: no complete artifact at its URI.
            ArtifactIntegrityError: its files differ from the recorded content hash (nothing loaded).
            MaterializerError: its materializer cannot be loaded or fails.
            ArtifactStoreUnavailableError: the store cannot be used.
        """
        path = self.path_of(artifact.uri)
        materializer = registry.by_path(artifact.materializer)
        with self.failures(f"reading artifact {artifact.id}"):
            if self.manifests and not self.fs.exists(f"{path}/{MANIFEST}"):
                raise _missing(artifact)
            if materializer.verify_before_load:
                return _read_verified(artifact, materializer, self.fs, path)
            try:
                return materializer.load(self.fs, path, import_type(artifact.data_type))
            except Exception as exc:
                if self.unavailable(exc):
                    raise
                if not self.fs.exists(path):  # checked only on failure: one stat less per input read
                    raise _missing(artifact) from None
                raise MaterializerError(
                    f"cannot read artifact {artifact.id} at {artifact.uri} with "
                    f"{artifact.materializer}: {type(exc).__name__}: {exc}"
                ) from exc

    def preview(self, artifact: ArtifactRecord, registry: MaterializerRegistry) -> dict[str, JSON]:
        """A bounded summary of ``artifact`` without loading it: its files and sizes, and under
        ``preview`` what its materializer shows (:meth:`Materializer.preview`: the first KiB of
        text, an array's shape, dtype and statistics of its first MiB, a table's columns and
        first rows), read with ranged requests where the format allows. Pickles and skops
        models are never loaded for a preview (``{"kind": "none"}``).

        Raises:
            ArtifactNotFoundError: no complete artifact at its URI.
            ArtifactStoreUnavailableError: the store cannot be used.
        """
        path = self.path_of(artifact.uri)
        with self.failures(f"previewing artifact {artifact.id}"):
            if not self.exists(artifact.uri):
                raise _missing(artifact)
            manifest = self.manifest(artifact.uri)
            if manifest is not None:
                files = dict(manifest.files)
            else:
                files = {f[len(path) :].lstrip("/"): int(self.fs.size(f)) for f in artifact_files(self.fs, path)}
            shown: dict[str, JSON] | None = None
            try:
                shown = registry.by_path(artifact.materializer).preview(self.fs, path)
            except Exception as exc:
                if self.unavailable(exc):
                    raise
                shown = {"kind": "error", "error": f"{type(exc).__name__}: {exc}"}
        return {
            "id": artifact.id,
            "uri": artifact.uri,
            "data_type": artifact.data_type,
            "materializer": artifact.materializer,
            "size": artifact.size,
            "files": dict(files),
            "preview": shown or {"kind": "none"},
        }

    def exists(self, uri: str) -> bool:
        """Whether a complete artifact is at ``uri``: on object storage, whether its manifest is
        (one request, nothing downloaded); elsewhere, whether its directory is."""
        path = self.path_of(uri)
        with self.failures(f"looking for {uri}"):
            if self.manifests:
                return bool(self.fs.exists(f"{path}/{MANIFEST}"))
            return bool(self.fs.exists(path))

    def manifest(self, uri: str) -> Manifest | None:
        """The manifest of the artifact at ``uri``; None without one (or on a store without
        manifests)."""
        if not self.manifests:
            return None
        with self.failures(f"reading the manifest of {uri}"):
            try:
                return Manifest.from_json(self.fs.cat_file(f"{self.path_of(uri)}/{MANIFEST}").decode())
            except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
                if self.unavailable(exc):
                    raise
                return None

    def size(self, uri: str) -> int:
        """Total size in bytes of the artifact's files (its manifest excluded).

        Raises:
            ArtifactNotFoundError: no complete artifact at ``uri``.
        """
        if self.manifests:
            manifest = self.manifest(uri)
            if manifest is None:
                raise ArtifactNotFoundError(f"no artifact at {uri}")
            return manifest.size
        path = self.path_of(uri)
        with self.failures(f"measuring {uri}"):
            if not self.fs.exists(path):
                raise ArtifactNotFoundError(f"no artifact at {uri}")
            return sum(int(self.fs.size(f)) for f in artifact_files(self.fs, path))

    def content_hash(self, uri: str) -> str:
        """The content hash of the artifact's files, read back from the store now (as recorded
        when it was written; ``metadata-store check --deep`` compares the two).

        Raises:
            ArtifactNotFoundError: no complete artifact at ``uri``.
        """
        if not self.exists(uri):
            raise ArtifactNotFoundError(f"no artifact at {uri}")
        with self.failures(f"hashing {uri}"):
            return hash_tree(self.fs, self.path_of(uri))[0]

    def delete(self, uri: str) -> bool:
        """Remove the artifact (or file) at ``uri``: on object storage its manifest first, so it
        stops existing before any of its files goes. False if nothing was there."""
        return self.remove(self.path_of(uri))

    def remove(self, path: str) -> bool:
        """Remove the file or directory tree ``path`` of this store (a manifest in it first); False
        if it was already gone."""
        with self.failures(f"removing {self.uri_of(path)}"):
            if not self.fs.exists(path):
                return False
            if self.manifests:
                try:
                    self.fs.rm_file(f"{path}/{MANIFEST}")
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if self.unavailable(exc):
                        raise
            with suppress(FileNotFoundError):
                self.fs.rm(path, recursive=True)
            return True

    def list(self, under: str | None = None) -> list[str]:
        """The URIs of the complete artifacts under the directory URI ``under`` (default: the
        whole store), sorted. An artifact is a directory named by an artifact id; half-written
        ones (a ``.tmp-`` directory, or no manifest on object storage) are not listed."""
        base = self.path_of(under) if under else self.root
        found: list[str] = []
        with self.failures(f"listing {self.uri_of(base)}"):
            if not self.fs.exists(base):
                return []
            if self.manifests:
                suffix = f"/{MANIFEST}"
                found = [p[: -len(suffix)] for p in self.fs.find(base) if p.endswith(suffix)]
            else:
                for path in self.fs.find(base, withdirs=True, detail=False):
                    parts = path[len(base) :].strip("/").split("/")
                    complete = not any(p.startswith(".tmp") for p in parts)
                    if _ID.fullmatch(parts[-1]) and complete and self.fs.isdir(path):
                        found.append(path)
        found = [p for p in found if not any(p.startswith(other + "/") for other in found)]
        return sorted(self.uri_of(p) for p in found)

    def write_text(self, uri: str, text: str) -> None:
        """Write a text file (e.g. a step's logs) as UTF-8, exactly (line endings and carriage
        returns are kept), creating parent directories."""
        path = self.path_of(uri)
        data = text.encode("utf-8", errors="backslashreplace")
        with self.failures(f"writing {uri}"):
            if self.manifests:
                self.fs.pipe_file(path, data)
                return
            self._makedirs(path.rsplit("/", 1)[0])
            with self.fs.open(path, "wb") as f:
                f.write(data)
            if self._local:
                set_mode(path, file_mode(self.permissions))

    def read_text(self, uri: str) -> str:
        """Read a text file (e.g. a step's logs) at ``uri``.

        Raises:
            ArtifactNotFoundError: the file does not exist.
        """
        with self.failures(f"reading {uri}"):
            try:
                with self.fs.open(self.path_of(uri), "rb") as f:
                    return bytes(f.read()).decode("utf-8", errors="replace")
            except FileNotFoundError as exc:
                if self.unavailable(exc):
                    raise
                raise ArtifactNotFoundError(f"no file at {uri}") from exc

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


def _type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _missing(artifact: ArtifactRecord) -> ArtifactNotFoundError:
    return ArtifactNotFoundError(f"artifact {artifact.id} is recorded but its files are missing at {artifact.uri}")


def store_for(uri: str) -> ArtifactStore:
    """The artifact store to reach ``uri`` through: the one built in this process whose root holds
    it (the longest such root), else a store over the filesystem the URI names (local files,
    or object storage through its default credentials), without manifests."""
    best: ArtifactStore | None = None
    for key, refs in list(_STORES.items()):
        if not (uri == key or uri.startswith(key + "/")):
            continue
        alive = [store for store in (r() for r in refs) if store is not None]
        if alive and (best is None or len(key) > len(best.uri_of(best.root))):
            best = alive[-1]
    if best is not None:
        return best
    parent = uri.rstrip("/").rsplit("/", 1)[0] or "/"
    return ArtifactStore(parent, name="(outside any artifact store)", manifests=False, register=False)


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def read_artifact(artifact: ArtifactRecord, registry: MaterializerRegistry) -> Any:
    """Load an artifact's value from its URI with the materializer that wrote it, through the
    artifact store holding the URI (:func:`store_for`).

    Every read goes through here (``ArtifactView.read()``, a step's inputs). When the
    materializer could run code from the files (``verify_before_load``: pickle, skops'
    trusted types), the files are first copied to a private temporary directory while
    their content hash is computed, the hash is compared with the recorded one, and the
    materializer loads the verified copy: a file swapped before or during the read is
    never loaded. Data-only formats are loaded in place, without hashing.

    Raises:
        ArtifactNotFoundError: the artifact's directory (on object storage: its manifest) is gone.
        ArtifactIntegrityError: its files differ from the recorded content hash (nothing loaded).
        MaterializerError: its materializer cannot be loaded or fails.
        ArtifactStoreUnavailableError: its artifact store cannot be used.
    """
    return store_for(artifact.uri).read(artifact, registry)


def _read_verified(artifact: ArtifactRecord, materializer: Materializer, fs: Any, path: str) -> Any:
    """Load ``artifact`` from a private copy of its files whose content hash was checked."""
    with tempfile.TemporaryDirectory(prefix="pipeledger-verified-") as copy:  # 0700
        if not fs.exists(path):
            raise _missing(artifact)
        if not artifact.content_hash:
            raise ArtifactIntegrityError(
                f"artifact {artifact.id} at {artifact.uri} has no recorded content hash (e.g. imported), and "
                f"{artifact.materializer} could run code from its files: not loading it"
            )
        found = hash_tree(fs, path, copy_to=copy)[0]
        if found != artifact.content_hash:
            raise ArtifactIntegrityError(
                f"artifact {artifact.id} at {artifact.uri} was changed after it was recorded: its files hash to "
                f"sha256 {found}, the record says {artifact.content_hash}; not loading it with "
                f"{artifact.materializer}, which could run code from the files. Restore the files or delete the run"
            )
        try:
            return materializer.load(LocalFileSystem(), copy, import_type(artifact.data_type))
        except Exception as exc:
            raise MaterializerError(
                f"cannot read artifact {artifact.id} at {artifact.uri} with "
                f"{artifact.materializer}: {type(exc).__name__}: {exc}"
            ) from exc


def preview_artifact(artifact: ArtifactRecord, registry: MaterializerRegistry) -> dict[str, JSON]:
    """A bounded summary of ``artifact`` through the store holding it (:meth:`ArtifactStore.preview`)."""
    return store_for(artifact.uri).preview(artifact, registry)


def verify_artifact(artifact: ArtifactRecord) -> str | None:
    """The content hash of ``artifact``'s files if it differs from the recorded one, else None."""
    found, _size = hash_artifact(artifact.uri)
    return found if found != artifact.content_hash else None


def read_text(uri: str) -> str:
    """Read a text file (e.g. a step's logs) at ``uri``.

    Raises:
        ArtifactNotFoundError: the file does not exist.
    """
    return store_for(uri).read_text(uri)


def hash_artifact(uri: str) -> tuple[str, int]:
    """The content hash and size of the artifact files at ``uri`` (as recorded when written)."""
    store = store_for(uri)
    with store.failures(f"hashing {uri}"):
        found, size, _sizes = hash_tree(store.fs, store.path_of(uri))
    return found, size


def uri_exists(uri: str) -> bool:
    """Whether the artifact (or file) at ``uri`` exists; on object storage, whether its manifest
    does (see :meth:`ArtifactStore.exists`)."""
    store = store_for(uri)
    if uri.startswith("/") and store.is_local:  # a local path: skip fsspec's resolution
        return os.path.exists(uri)
    return store.exists(uri)
