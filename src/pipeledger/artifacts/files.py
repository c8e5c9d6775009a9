"""What an artifact's files are: their content hash, and the manifest written last on object storage.

The content hash is sha256 over the files of an artifact's directory, sorted by relative
name, each as ``name \\0 contents \\0``; the manifest (:data:`MANIFEST`, at the top of the
directory) is not part of it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

#: The manifest's name inside an artifact's directory on a store without atomic moves.
MANIFEST = ".manifest.json"
#: Bytes read per call when hashing or copying.
CHUNK = 1 << 20


@dataclass(frozen=True)
class Manifest:
    """Written after an artifact's files on object storage: the artifact exists once it does."""

    artifact_id: str
    content_hash: str
    size: int
    materializer: str
    materializer_version: str
    data_type: str
    files: dict[str, int]

    def to_json(self) -> str:
        return json.dumps({"format": 1, **asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest. Raises ValueError when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != 1:
            raise ValueError("not a pipeledger artifact manifest")
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        return cls(**fields)


def artifact_files(fs: Any, path: str) -> list[str]:
    """The files of the artifact directory ``path`` (full paths, sorted), its manifest excluded."""
    manifest = f"{path.rstrip('/')}/{MANIFEST}"
    return sorted(f for f in fs.find(path) if f != manifest)


def hash_tree(fs: Any, path: str, copy_to: str | None = None) -> tuple[str, int, dict[str, int]]:
    """The content hash of the artifact directory ``path``, its total size and each file's size.

    With ``copy_to`` (a local directory), the files are also copied there as they are read:
    the copy is exactly what was hashed. Memory stays at one chunk whatever the size. A
    filesystem that can hash where the files are (a pipeledger server's, ``fs.hash_tree``) is
    asked to, unless the files are to be copied.
    """
    served = getattr(fs, "hash_tree", None)
    if served is not None and copy_to is None:
        found: tuple[str, int, dict[str, int]] = served(path)
        return found
    digest = hashlib.sha256()
    size = 0
    sizes: dict[str, int] = {}
    for file in artifact_files(fs, path):
        rel = file[len(path) :].lstrip("/")
        digest.update(rel.encode() + b"\0")
        target = None
        if copy_to is not None:
            local = os.path.join(copy_to, *rel.split("/"))
            os.makedirs(os.path.dirname(local), mode=0o700, exist_ok=True)
            target = open(local, "xb")  # noqa: SIM115 - closed below
        before = size
        try:
            with fs.open(file, "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    if target is not None:
                        target.write(chunk)
        finally:
            if target is not None:
                target.close()
        sizes[rel] = size - before
        digest.update(b"\0")
    return digest.hexdigest(), size, sizes


def hash_local_tree(path: str, dir_mode: int, file_mode: int) -> tuple[str, int]:
    """:func:`hash_tree` of a local directory, read with the ``os`` module (no filesystem object),
    giving every directory and file under ``path`` (itself included) the mode ``dir_mode`` /
    ``file_mode`` on the way (see :func:`pipeledger.permissions.set_mode`): the content hash and
    total size."""
    from pipeledger.permissions import set_mode

    set_mode(path, dir_mode)
    files: list[tuple[str, str]] = []
    for root, dirs, names in os.walk(path):
        rel_root = os.path.relpath(root, path).replace(os.sep, "/")
        for name in dirs:
            set_mode(os.path.join(root, name), dir_mode)
        for name in names:
            if rel_root == "." and name == MANIFEST:
                continue
            full = os.path.join(root, name)
            set_mode(full, file_mode)
            files.append((name if rel_root == "." else f"{rel_root}/{name}", full))
    digest = hashlib.sha256()
    size = 0
    for rel, full in sorted(files):
        digest.update(rel.encode() + b"\0")
        with open(full, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        digest.update(b"\0")
    return digest.hexdigest(), size


def import_type(path: str) -> type | None:
    """The class named ``module.QualName``, or None when it cannot be imported."""
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
