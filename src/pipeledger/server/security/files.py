"""Who may touch which file of the server's artifact store (the ``/api/v1/artifacts`` routes).

The artifact store's layout names the owner of every file (:mod:`pipeledger.artifacts.store`)::

    <root>/stores/<store>/<pipeline>/<run>-<run id>/<step>-<step run id>/...   a pipeline's files
    <root>/stores/<store>/.owner.json                                         the ownership token

so a path's project is its pipeline's (the third part under the root), looked up in the
metadata store; nothing else about a path is trusted. The rules:

* a pipeline's files: reading (download, stat, hash, list) needs ``read`` on the pipeline,
  writing (upload, move, remove) needs ``write`` there; a pipeline the caller cannot read, or
  that does not exist, answers 404 with the route's own "nothing at PATH" (as a missing file);
* ``.owner.json`` holds the store's ownership token: reading it needs ``write`` in some project
  (as ``store_identity``: writers need the token to claim the directory), creating it ``write``
  in some project, replacing or removing it a server administrator;
* anything else (the root, ``stores/``, ``stores/<store>/`` itself): stat needs ``write`` in some
  project; listing needs ``admin`` in some project (``gc`` lists ``stores/<store>/`` to find
  orphaned files) and shows only the pipelines the caller may read; every write needs a server
  administrator.

A server administrator passes every check.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeledger.artifacts.store import OWNER_FILE, ArtifactStore
from pipeledger.exceptions import PermissionDeniedError
from pipeledger.server.errors import ApiError
from pipeledger.server.security.access import Access
from pipeledger.server.security.principal import Role


@dataclass(frozen=True)
class Place:
    """What a path of the artifact store is: a pipeline's file (``pipeline`` set), the
    ownership token (``owner_file``), or the store's own structure (neither)."""

    pipeline: str | None
    owner_file: bool = False
    partial: bool = False
    """The ownership token's temporary file (``.owner.json.<pid>-<random>.tmp``, written then
    renamed onto ``.owner.json`` by :meth:`ArtifactStore.claim`)."""


def place_of(store: ArtifactStore, path: str) -> Place:
    """Classify ``path`` (already checked to lie inside ``store``, see ``inside``)."""
    relative = path[len(store.root) :].strip("/")
    parts = relative.split("/") if relative else []
    if len(parts) >= 3 and parts[0] == "stores":
        if len(parts) == 3 and parts[2] == OWNER_FILE:
            return Place(None, owner_file=True)
        if len(parts) == 3 and parts[2].startswith(OWNER_FILE + ".") and parts[2].endswith(".tmp"):
            return Place(None, owner_file=True, partial=True)
        return Place(parts[2])
    return Place(None)


def _forbidden(error: PermissionDeniedError) -> ApiError:
    return ApiError(403, "PermissionDeniedError", str(error))


def check_read(access: Access, store: ArtifactStore, path: str, absent: str) -> None:
    """Check a read of ``path`` (download, stat, hash); ``absent`` is the route's message for a
    path with nothing at it, answered for a pipeline the caller cannot read too.

    Raises:
        ApiError: 404 (``absent``) or 403.
    """
    if access.admin:
        return
    place = place_of(store, path)
    try:
        if place.pipeline is not None:
            if not access.may_read("pipeline", place.pipeline):
                raise ApiError(404, "NotFoundError", absent)
        else:
            access.require_somewhere(Role.WRITE, "reading the artifact store's own files")
    except PermissionDeniedError as exc:
        raise _forbidden(exc) from None


def check_write(access: Access, store: ArtifactStore, path: str, action: str) -> None:
    """Check a write of ``path`` (upload, move's source and target, remove).

    Raises:
        ApiError: 404 (no pipeline the caller may read has the path's name) or 403.
    """
    if access.admin:
        return
    place = place_of(store, path)
    try:
        if place.pipeline is not None:
            if not access.may_read("pipeline", place.pipeline):
                error = access.missing("pipeline", place.pipeline)
                raise ApiError(404, "NotFoundError", str(error))
            access.need("pipeline", place.pipeline, Role.WRITE, action)
        elif place.owner_file and (
            place.partial or (action in ("uploading files", "moving files") and not store.fs.exists(path))
        ):
            access.require_somewhere(Role.WRITE, "claiming the artifact store")
        else:
            raise ApiError(
                403, "PermissionDeniedError", f"{action} outside a pipeline's files needs a server administrator"
            )
    except PermissionDeniedError as exc:
        raise _forbidden(exc) from None


def check_list(access: Access, store: ArtifactStore, path: str, absent: str) -> set[str] | None:
    """Check a listing of directory ``path``; returns the entry names the caller may see, or
    None for all.

    Raises:
        ApiError: 404 (``absent``) or 403.
    """
    if access.admin:
        return None
    place = place_of(store, path)
    if place.pipeline is not None:
        check_read(access, store, path, absent)
        return None
    try:
        access.require_somewhere(Role.ADMIN, "listing the artifact store")
    except PermissionDeniedError as exc:
        raise _forbidden(exc) from None
    relative = path[len(store.root) :].strip("/").split("/")
    if len(relative) != 2 or relative[0] != "stores":
        return None  # the root and stores/: store ids, no pipeline
    names = (
        [str(n).rstrip("/").rsplit("/", 1)[-1] for n in store.fs.ls(path, detail=False)] if store.fs.isdir(path) else []
    )
    return {name for name in names if name == OWNER_FILE or access.may_read("pipeline", name)}
