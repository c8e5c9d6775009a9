"""Keeping a store healthy: crash detection, deleting runs, retention, orphaned files, checks.

The database is always changed first, in one transaction; files are removed
afterwards. A failure in between leaves only files without records (orphans),
which :func:`collect_garbage` finds and removes later; never a record without its files.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pipeledger.artifacts.store import ArtifactStore, uri_exists
from pipeledger.exceptions import ArtifactStoreUnavailableError, NotFoundError, PermissionDeniedError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import RunDeletion, RunRecord, Status, utcnow
from pipeledger.settings import heartbeat_timeout
from pipeledger.text import plural

log = logging.getLogger(__name__)


def mark_crashed_runs(store: MetadataStore) -> list[str]:
    """Mark running runs whose heartbeat is older than the timeout as crashed; their ids. A
    caller the server does not let mark runs (``admin`` in no project) marks none: listings
    still work for it, and show such runs as recorded until someone allowed lists them."""
    now = utcnow()
    try:
        return store.mark_crashed(heartbeat_before=now - timedelta(seconds=heartbeat_timeout()), at=now)
    except PermissionDeniedError:
        return []


def verified_owner(store: MetadataStore, artifact_store: ArtifactStore | None) -> tuple[str | None, str | None]:
    """The id of ``store`` if its ``stores/<id>/`` in ``artifact_store`` is its own, else None and
    why not (None too when the store has no id).

    It is its own when its ``.owner.json`` holds the token kept in the store's database (see
    :meth:`ArtifactStore.claim`), or when it does not exist yet. A database whose id was
    changed to another store's cannot show that store's token: its files stay untouched.
    """
    identity = store.store_identity()
    if identity is None or artifact_store is None:
        return None, None
    directory = f"{artifact_store.root}/stores/{identity.id}"
    with artifact_store.failures("checking which metadata store owns its directory"):
        if artifact_store.owner_token(identity.id) == identity.token or not artifact_store.fs.exists(directory):
            return identity.id, None
    return None, (
        f"{artifact_store.uri_of(directory)} is not this metadata store's (its .owner.json is missing or "
        "holds another token): its files are left alone"
    )


def owned_path(artifact_store: ArtifactStore | None, owner: str | None, uri: str, name: str) -> str | None:
    """The path of ``uri`` if this metadata store (id ``owner``) wrote it into ``artifact_store``
    and may remove it; else None. ``name`` is what the path must end with: an artifact's id,
    or ``logs.txt``.

    A path is this store's when it lies inside the artifact store's root (normalised, no
    symbolic link on the way: :meth:`ArtifactStore.path_inside`) and either under
    ``stores/<owner>/`` at the depth of the layout, or at the depth of the layout used before
    ``stores/`` existed. Anything else (imported or external data, other stores' files, a
    hostile record pointing anywhere) is never removed.
    """
    if artifact_store is None:
        return None
    depth = 4 if name == "logs.txt" else 5
    if owner is not None:
        path = artifact_store.path_inside(uri, f"stores/{owner}")
        if path is not None:
            relative = path[len(artifact_store.root) + 1 :].split("/")[2:]
            return path if len(relative) == depth and relative[-1] == name else None
    path = artifact_store.path_inside(uri)
    if path is None:
        return None
    relative = path[len(artifact_store.root) + 1 :].split("/")
    if relative[0] in ("stores", ".tmp") or len(relative) != depth or relative[-1] != name:
        return None
    return path


def _files_of(deletion: RunDeletion, artifact_store: ArtifactStore | None, owner: str | None) -> RunDeletion:
    """``deletion`` with the paths its removal takes (``removed_files``) and the URIs it leaves."""
    remove: list[str] = []
    keep: list[str] = []
    wanted = [(a.uri, a.id) for a in deletion.deleted_artifacts] + [(u, "logs.txt") for u in deletion.logs_uris]
    for uri, name in wanted:
        path = owned_path(artifact_store, owner, uri, name)
        (keep if path is None else remove).append(uri if path is None else path)
    return replace(deletion, removed_files=remove, kept_files=keep)


def _remove(artifact_store: ArtifactStore, path: str) -> bool:
    """Remove a file or directory tree of the artifact store (an artifact's manifest first, see
    :meth:`ArtifactStore.remove`); False if it was already gone or could not be removed."""
    try:
        return artifact_store.remove(path)
    except (OSError, ArtifactStoreUnavailableError) as exc:  # left for gc: the records are gone already
        log.warning("could not remove %s: %s", path, exc)
        return False


def _prune(artifact_store: ArtifactStore, owner: str | None, path: str, *, run_dir: bool) -> None:
    """Remove the directories of ``path``'s step run (and with ``run_dir``, of its run: only for a
    deleted run) in ``stores/<owner>/`` that are left empty; never the pipeline's directory,
    which a new run may be writing into."""
    if owner is None:
        return
    base = f"{artifact_store.root}/stores/{owner}/"
    if not path.startswith(base):
        return
    parts = path[len(base) :].split("/")  # pipeline, run, step[, output], name
    for depth in range(len(parts) - 1, 1 if run_dir else 2, -1):
        try:
            artifact_store.fs.rmdir(base + "/".join(parts[:depth]))
        except (OSError, NotImplementedError):
            return  # not empty (or the filesystem has no directories)


def delete_run(store: MetadataStore, run_id: str, artifact_store: ArtifactStore | None = None) -> RunDeletion:
    """Delete a run's records (one transaction), then the files of its unshared artifacts and
    its logs. Artifacts other runs use are kept (see ``RunDeletion.kept_artifacts``).

    Files are removed only where :func:`owned_path` says this store wrote them into
    ``artifact_store`` (without one, none is); the others are listed in ``kept_files``.
    """
    owner, _ = verified_owner(store, artifact_store)
    deletion = _files_of(store.delete_run(run_id), artifact_store, owner)
    if artifact_store is None:
        return deletion
    gone = [path for path in deletion.removed_files if _remove(artifact_store, path)]
    for path in gone:
        _prune(artifact_store, owner, path, run_dir=True)
    return replace(deletion, removed_files=gone)


def deletion_preview(
    store: MetadataStore, run_id: str, artifact_store: ArtifactStore | None, *, also_deleted: Collection[str] = ()
) -> RunDeletion:
    """What :func:`delete_run` would delete now, records and files, without changing anything;
    with ``also_deleted``, what it would delete as one of those runs deleted together."""
    owner = verified_owner(store, artifact_store)[0]
    return _files_of(store.deletion_preview(run_id, also_deleted=also_deleted), artifact_store, owner)


def delete_runs(
    store: MetadataStore, runs: Iterable[RunRecord], artifact_store: ArtifactStore | None = None
) -> Iterator[tuple[RunRecord, RunDeletion | None]]:
    """:func:`delete_run` each of ``runs`` in turn, yielding each with its deletion, or with None if
    the run was already gone (another ``gc`` or ``run delete`` took it since it was selected):
    a janitor racing another one skips what that one deleted instead of stopping."""
    for run in runs:
        try:
            yield run, delete_run(store, run.id, artifact_store)
        except NotFoundError:
            yield run, None


def runs_to_retire(
    store: MetadataStore,
    *,
    older_than: timedelta | None = None,
    keep_last: int | None = None,
    pipeline: str | None = None,
) -> list[RunRecord]:
    """Finished runs that a retention policy removes: started before ``now - older_than`` and not
    among the ``keep_last`` latest runs of their pipeline. Running runs are never selected.

    Each pipeline's runs are read in one statement (one consistent snapshot): pages read one by
    one would shift while other processes add or delete runs, and select a run twice or skip one.
    Runs added meanwhile are newer than every selected one, so ``keep_last`` still holds."""
    cutoff = utcnow() - older_than if older_than is not None else None
    names = [pipeline] if pipeline else _all_pipelines(store)
    selected: dict[str, RunRecord] = {}
    for name in names:
        for run in store.list_runs(pipeline=name, offset=keep_last or 0, limit=None):
            if run.status is Status.RUNNING:
                continue
            if cutoff is not None and run.start_time >= cutoff:
                continue
            selected.setdefault(run.id, run)
    return list(selected.values())


def _all_pipelines(store: MetadataStore) -> list[str]:
    """Every pipeline's name, read in one statement (see :func:`runs_to_retire`)."""
    return list(dict.fromkeys(p.name for p in store.list_pipelines(limit=None)))


@dataclass
class OrphanReport:
    """Files of this metadata store in the artifact store that no record points to."""

    artifact_dirs: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    #: Why this store's directory was not searched (see :func:`verified_owner`), if it was not.
    refused: str | None = None

    @property
    def paths(self) -> list[str]:
        """Every path to remove."""
        return [*self.artifact_dirs, *self.temporary, *self.logs]


_ID = re.compile(r"[0-9a-f]{32}")
_OWNED_DIR = re.compile(r".*-([0-9a-f]{32})")


def find_orphans(store: MetadataStore, artifact_store: ArtifactStore, *, grace: float = 3600) -> OrphanReport:
    """This store's files that no record points to and that nothing is writing, untouched for
    ``grace`` seconds.

    Only ``stores/<store id>/`` is searched (see :mod:`pipeledger.artifacts.store`), and only if
    it is this store's (:func:`verified_owner`): files of other metadata stores sharing the
    artifact store, and of stores without an id, are never orphans. In a step run's directory,
    while the step run is ``running`` nothing is (its outputs are moved into place before they
    are recorded); otherwise an artifact directory
    whose id is not recorded, a ``.tmp-<id>`` directory, and logs of a step run that is no
    longer recorded are. The step runs' states are read before the artifacts: a step run that
    finished after that read had recorded its outputs before the second one. The age (newest
    modification in the tree) protects writers the janitor cannot see, e.g. a run wrongly
    marked crashed while its process was paused. Temporary directories of the old layout
    (``<root>/.tmp/<id>``) older than ``grace`` are collected too.
    """
    with artifact_store.failures("looking for orphaned files"):
        return _find_orphans(store, artifact_store, grace)


def _find_orphans(store: MetadataStore, artifact_store: ArtifactStore, grace: float) -> OrphanReport:
    fs, root = artifact_store.fs, artifact_store.root
    report = OrphanReport()
    owner, report.refused = verified_owner(store, artifact_store)
    now = time.time()
    if owner is not None and fs.exists(f"{root}/stores/{owner}"):
        step_dirs: dict[str, str] = {}
        for path in fs.glob(f"{root}/stores/{owner}/*/*/*"):
            run_part, step_part = path.rstrip("/").split("/")[-2:]
            matched = _OWNED_DIR.fullmatch(step_part)
            if matched and _OWNED_DIR.fullmatch(run_part) and fs.isdir(path):
                step_dirs[path] = matched.group(1)
        stale = utcnow() - timedelta(seconds=heartbeat_timeout())  # a crashed run's steps are not running
        states = store.step_run_statuses(list(step_dirs.values()), heartbeat_before=stale)  # before the artifacts
        artifact_dirs: dict[str, str] = {}  # path -> artifact id
        for path, step_run_id in sorted(step_dirs.items()):
            if states.get(step_run_id) is Status.RUNNING:
                continue  # being written
            for entry in _listing(fs, path):
                name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
                if entry["type"] == "directory" and name.startswith(".tmp-"):
                    report.temporary.append(entry["name"])
                elif name == "logs.txt" and step_run_id not in states:
                    report.logs.append(entry["name"])
                elif entry["type"] == "directory":
                    for inner in _listing(fs, entry["name"]):
                        artifact_id = inner["name"].rstrip("/").rsplit("/", 1)[-1]
                        if inner["type"] == "directory" and _ID.fullmatch(artifact_id):
                            artifact_dirs[inner["name"]] = artifact_id
        recorded = store.recorded_artifact_ids(list(artifact_dirs.values()))
        report.artifact_dirs = sorted(p for p, i in artifact_dirs.items() if i not in recorded)
    report.temporary.extend(fs.glob(f"{root}/.tmp/*"))
    for name in ("artifact_dirs", "temporary", "logs"):
        old = [p for p in getattr(report, name) if now - _last_modified(fs, p) > grace]
        setattr(report, name, sorted(old))
    return report


def _listing(fs: Any, path: str) -> list[dict[str, Any]]:
    """The entries of directory ``path``; none if it is gone (another janitor removed it since it
    was found: that is not an error)."""
    try:
        return list(fs.ls(path, detail=True))
    except FileNotFoundError:
        return []


def _last_modified(fs: Any, path: str) -> float:
    """The newest modification time of ``path`` and everything in it; now if it cannot be read."""
    newest = 0.0
    try:
        for item in [path, *fs.find(path, withdirs=True)]:
            try:
                newest = max(newest, fs.modified(item).timestamp())
            except (OSError, NotImplementedError, ValueError):
                continue
    except OSError:
        return time.time()
    return newest or time.time()


def remove_orphans(artifact_store: ArtifactStore, report: OrphanReport, owner: str | None = None) -> int:
    """Remove what :func:`find_orphans` found (only paths inside the artifact store), and the
    step run directories of ``owner`` (the store id) left empty; how many went."""
    removed = 0
    for path in report.paths:
        if artifact_store.path_inside(artifact_store.uri_of(path)) is not None and _remove(artifact_store, path):
            removed += 1
            _prune(artifact_store, owner, path, run_dir=False)  # the run may still be running
    return removed


@dataclass
class CheckReport:
    """Problems found by :func:`check_store` (empty when all is well)."""

    problems: list[str] = field(default_factory=list)
    artifacts_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(store: MetadataStore, *, deep: bool = False, limit: int = 20) -> CheckReport:
    """Check referential integrity, that every artifact's files exist, and (``deep``) that their
    content hashes match. Changes nothing."""
    from pipeledger.artifacts.store import hash_artifact

    cutoff: datetime = utcnow() - timedelta(seconds=heartbeat_timeout())
    report = CheckReport(store.integrity_problems(heartbeat_before=cutoff))
    missing: list[str] = []
    mismatched: list[str] = []
    for batch in store.iter_artifacts():
        for artifact in batch:
            report.artifacts_checked += 1
            if not uri_exists(artifact.uri):
                missing.append(artifact.uri)
            elif deep and hash_artifact(artifact.uri)[0] != artifact.content_hash:
                mismatched.append(artifact.uri)
    for label, uris in (
        ("whose files are missing", missing),
        ("whose content does not match the recorded hash (files changed or removed)", mismatched),
    ):
        if uris:
            shown = ", ".join(uris[:limit]) + (" ..." if len(uris) > limit else "")
            report.problems.append(f"{plural(len(uris), 'artifact')} {label}: {shown}")
    return report
