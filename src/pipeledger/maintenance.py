"""Keeping a store healthy: crash detection, deleting runs, retention, orphaned files, checks.

The database is always changed first, in one transaction; files are removed
afterwards. A failure in between leaves only files without records (orphans),
which :func:`collect_garbage` finds and removes later; never a record without its files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import fsspec

from pipeledger.artifacts.store import ArtifactStore, uri_exists
from pipeledger.exceptions import NotFoundError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import RunDeletion, RunRecord, Status, utcnow
from pipeledger.settings import heartbeat_timeout

log = logging.getLogger(__name__)


def mark_crashed_runs(store: MetadataStore) -> list[str]:
    """Mark running runs whose heartbeat is older than the timeout as crashed; their ids."""
    now = utcnow()
    return store.mark_crashed(heartbeat_before=now - timedelta(seconds=heartbeat_timeout()), at=now)


def _remove(uri: str) -> bool:
    """Remove a file or directory tree; False if it was already gone or could not be removed."""
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        if not fs.exists(path):
            return False
        fs.rm(path, recursive=True)
        return True
    except OSError as exc:
        log.warning("could not remove %s: %s", uri, exc)
        return False


def delete_run(store: MetadataStore, run_id: str) -> RunDeletion:
    """Delete a run's records (one transaction), then the files of its unshared artifacts and
    its logs. Artifacts other runs use are kept (see ``RunDeletion.kept_artifacts``)."""
    deletion = store.delete_run(run_id)
    for artifact in deletion.deleted_artifacts:
        _remove(artifact.uri)
    for uri in deletion.logs_uris:
        _remove(uri)
    return deletion


def delete_runs(store: MetadataStore, runs: Iterable[RunRecord]) -> Iterator[tuple[RunRecord, RunDeletion | None]]:
    """:func:`delete_run` each of ``runs`` in turn, yielding each with its deletion, or with None if
    the run was already gone (another ``gc`` or ``run delete`` took it since it was selected):
    a janitor racing another one skips what that one deleted instead of stopping."""
    for run in runs:
        try:
            yield run, delete_run(store, run.id)
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
    """Files in the artifact store that no record points to."""

    artifact_dirs: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)


def find_orphans(store: MetadataStore, artifact_store: ArtifactStore, *, tmp_age: float = 3600) -> OrphanReport:
    """Artifact directories (``<root>/<pipeline>/<run>/<step>/<output>/<id>``) whose id is not
    recorded, and temporary directories older than ``tmp_age`` seconds (left by crashes)."""
    fs, root = artifact_store.fs, artifact_store.root
    report = OrphanReport()
    if not fs.exists(root):
        return report
    candidates: dict[str, str] = {}
    for path in fs.glob(f"{root}/*/*/*/*/*"):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if len(name) == 32 and all(c in "0123456789abcdef" for c in name) and fs.isdir(path):
            candidates[name] = path
    recorded = store.recorded_artifact_ids(list(candidates))
    report.artifact_dirs = sorted(p for i, p in candidates.items() if i not in recorded)
    now = time.time()
    for path in fs.glob(f"{root}/.tmp/*"):
        try:
            modified = fs.modified(path).timestamp()
        except (OSError, NotImplementedError):
            continue
        if now - modified > tmp_age:
            report.temporary.append(path)
    return report


def remove_orphans(artifact_store: ArtifactStore, report: OrphanReport) -> int:
    """Remove what :func:`find_orphans` found; how many paths went."""
    removed = 0
    for path in [*report.artifact_dirs, *report.temporary]:
        try:
            artifact_store.fs.rm(path, recursive=True)
            removed += 1
        except OSError as exc:
            log.warning("could not remove %s: %s", path, exc)
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
        ("artifacts whose files are missing", missing),
        ("artifacts whose content changed", mismatched),
    ):
        if uris:
            shown = ", ".join(uris[:limit]) + (" ..." if len(uris) > limit else "")
            report.problems.append(f"{len(uris)} {label}: {shown}")
    return report
