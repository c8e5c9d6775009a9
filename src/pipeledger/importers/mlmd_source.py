"""Reading an ML Metadata (MLMD) database into plain records.

This module is the only one that talks to Google's ``ml_metadata`` library, which is
an optional dependency (``pip install 'pipeledger[kubeflow]'``) imported only when a
source is opened. :func:`read_snapshot` opens the database (a SQLite file read-only, or
a MySQL database), reads every context, execution, artifact and event, and returns an
:class:`MlmdSnapshot` that the mapping (:mod:`pipeledger.importers.mlmd_plan`) turns
into pipeledger records without touching MLMD again.

A SQLite file whose MLMD schema is older than the installed library (e.g. written by
ZenML <= 0.13 with an older ``ml-metadata``) is copied into a temporary directory and
the copy is upgraded; the original file is never written. A MySQL database must
already have the library's schema version.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeledger.exceptions import ConfigError, PipeledgerError
from pipeledger.models import JSON
from pipeledger.stack.secrets import is_reference, resolve

INSTALL_HINT = "pip install 'pipeledger[kubeflow]'"


class MlmdImportError(PipeledgerError):
    """An MLMD database cannot be opened or read, or ``ml_metadata`` is not installed."""


@dataclass(frozen=True)
class SqliteSource:
    """An MLMD SQLite file, opened read-only."""

    path: Path

    def describe(self) -> str:
        """Where the database is, for summaries and provenance (no secrets)."""
        return f"sqlite:{self.path.resolve()}"


@dataclass(frozen=True)
class MysqlSource:
    """An MLMD database on a MySQL server; ``password`` is a secret reference or None."""

    host: str
    database: str
    port: int = 3306
    user: str = "root"
    password: str | None = None

    def __post_init__(self) -> None:
        if self.password is not None and not is_reference(self.password):
            raise ConfigError(
                "refusing a clear-text MySQL password: give a reference instead, e.g. "
                "--mysql-password='${env:MLMD_PASSWORD}' (an environment variable) or '${file:/path/to/secret}'"
            )

    def describe(self) -> str:
        """Where the database is, for summaries and provenance (never the password)."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


Source = SqliteSource | MysqlSource


@dataclass(frozen=True)
class MlmdContext:
    """An MLMD context (a pipeline, a run, a node...) with its type name."""

    id: int
    type: str
    name: str
    create_ms: int
    properties: dict[str, JSON]


@dataclass(frozen=True)
class MlmdExecution:
    """An MLMD execution; ``state`` is the name of its ``last_known_state`` (``COMPLETE``...)."""

    id: int
    type: str
    name: str
    state: str
    create_ms: int
    update_ms: int
    properties: dict[str, JSON]
    custom_properties: dict[str, JSON]
    context_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class MlmdArtifact:
    """An MLMD artifact; ``state`` is the name of its state (``LIVE``...)."""

    id: int
    type: str
    uri: str
    name: str
    state: str
    create_ms: int
    properties: dict[str, JSON]
    custom_properties: dict[str, JSON]


@dataclass(frozen=True)
class MlmdEvent:
    """An MLMD event: ``type`` is its name (``INPUT``, ``OUTPUT``...), ``path`` its keys and indexes."""

    execution_id: int
    artifact_id: int
    type: str
    path: tuple[str | int, ...]
    ms: int


@dataclass
class MlmdSnapshot:
    """Everything read from one MLMD database.

    ``source_id`` identifies the database's history independently of where it lives (a
    digest of its earliest context, execution and artifact), so the same history copied
    elsewhere maps to the same pipeledger ids. ``parents`` maps a context id to its
    parent context ids. ``notes`` are facts about the reading worth reporting.
    """

    source_id: str
    description: str
    contexts: dict[int, MlmdContext]
    executions: dict[int, MlmdExecution]
    artifacts: dict[int, MlmdArtifact]
    events: list[MlmdEvent]
    parents: dict[int, tuple[int, ...]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def mlmd_modules() -> tuple[Any, Any]:
    """``(metadata_store, metadata_store_pb2)`` from ``ml_metadata``, imported on first use.

    Raises:
        MlmdImportError: ``ml_metadata`` is not installed (the message says how to install it).
    """
    try:
        from ml_metadata import metadata_store
        from ml_metadata.proto import metadata_store_pb2
    except ImportError as exc:
        raise MlmdImportError(
            f"importing from ML Metadata needs Google's ml-metadata package (Python <= 3.11): {INSTALL_HINT}"
        ) from exc
    return metadata_store, metadata_store_pb2


@contextmanager
def open_source(source: Source) -> Iterator[tuple[Any, list[str]]]:
    """An ``ml_metadata`` ``MetadataStore`` reading ``source``, and notes about how it was opened.

    Raises:
        MlmdImportError: the file is missing or not an MLMD database, the server cannot be
            reached, or the MySQL database's schema is older than the library's.
    """
    metadata_store, pb = mlmd_modules()
    notes: list[str] = []
    if isinstance(source, SqliteSource):
        if not source.path.is_file():
            raise MlmdImportError(f"no MLMD database at {source.path}: the file does not exist")
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(source.path)
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
        try:
            store = metadata_store.MetadataStore(config)
        except RuntimeError as exc:
            if "older than library version" not in str(exc):
                raise MlmdImportError(f"cannot read {source.path} as an MLMD database: {_first_line(exc)}") from exc
        else:
            yield store, notes
            return
        with tempfile.TemporaryDirectory(prefix="pipeledger-mlmd-") as tmp:
            copy = Path(tmp) / source.path.name
            shutil.copyfile(source.path, copy)
            config.sqlite.filename_uri = str(copy)
            config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE
            try:
                store = metadata_store.MetadataStore(config, enable_upgrade_migration=True)
            except RuntimeError as exc:
                raise MlmdImportError(f"cannot upgrade a copy of {source.path}: {_first_line(exc)}") from exc
            notes.append("the file's MLMD schema is older than the library's: a temporary copy was upgraded and read")
            yield store, notes
        return
    config = pb.ConnectionConfig()
    config.mysql.host = source.host
    config.mysql.port = source.port
    config.mysql.database = source.database
    config.mysql.user = source.user
    config.mysql.skip_db_creation = True
    if source.password is not None:
        config.mysql.password = resolve("mysql_password", source.password, "pipeledger import mlmd")
    _check_mysql_holds_mlmd(source, config.mysql.password)
    try:
        store = metadata_store.MetadataStore(config)
    except RuntimeError as exc:
        raise MlmdImportError(f"cannot read MLMD database {source.describe()}: {_first_line(exc)}") from exc
    yield store, notes


def _check_mysql_holds_mlmd(source: MysqlSource, password: str) -> None:
    """Refuse a MySQL database without MLMD's tables: ``ml_metadata`` would create its schema
    there (it has no read-only mode for MySQL). Checked with PyMySQL when it is installed."""
    try:
        pymysql: Any = importlib.import_module("pymysql")
    except ImportError:
        return
    try:
        connection = pymysql.connect(
            host=source.host, port=source.port, user=source.user, password=password, database=source.database
        )
    except pymysql.MySQLError as exc:
        raise MlmdImportError(f"cannot connect to {source.describe()}: {exc.args[-1]}") from exc
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW TABLES LIKE 'MLMDEnv'")
            found = cursor.fetchone()
    finally:
        connection.close()
    if found is None:
        raise MlmdImportError(f"{source.describe()} is not an MLMD database (it has no MLMDEnv table)")


def read_snapshot(source: Source) -> MlmdSnapshot:
    """Read every context, execution, artifact and event of ``source`` (see :func:`open_source`)."""
    _, pb = mlmd_modules()
    with open_source(source) as (store, notes):
        contexts = {c.id: _context(c) for c in store.get_contexts()}
        members: dict[int, list[int]] = {}
        parents: dict[int, tuple[int, ...]] = {}
        for context_id in sorted(contexts):
            for execution in store.get_executions_by_context(context_id):
                members.setdefault(execution.id, []).append(context_id)
            found = store.get_parent_contexts_by_context(context_id)
            if found:
                parents[context_id] = tuple(sorted(p.id for p in found))
        executions = {e.id: _execution(pb, e, tuple(sorted(members.get(e.id, ())))) for e in store.get_executions()}
        artifacts = {a.id: _artifact(pb, a) for a in store.get_artifacts()}
        events: list[MlmdEvent] = []
        ids = sorted(executions)
        for start in range(0, len(ids), 500):
            events.extend(_event(pb, e) for e in store.get_events_by_execution_ids(ids[start : start + 500]))
    return MlmdSnapshot(
        source_id=_source_id(contexts, executions, artifacts),
        description=source.describe(),
        contexts=contexts,
        executions=executions,
        artifacts=artifacts,
        events=sorted(events, key=lambda e: (e.ms, e.execution_id, e.artifact_id, e.type)),
        parents=parents,
        notes=notes,
    )


def _source_id(
    contexts: dict[int, MlmdContext], executions: dict[int, MlmdExecution], artifacts: dict[int, MlmdArtifact]
) -> str:
    """16 hex digits identifying a history: its first context, execution and artifact."""
    parts: list[str] = []
    if contexts:
        first = contexts[min(contexts)]
        parts.append(f"c{first.id}:{first.type}:{first.name}:{first.create_ms}")
    if executions:
        first_execution = executions[min(executions)]
        parts.append(f"e{first_execution.id}:{first_execution.type}:{first_execution.create_ms}")
    if artifacts:
        first_artifact = artifacts[min(artifacts)]
        parts.append(f"a{first_artifact.id}:{first_artifact.type}:{first_artifact.uri}:{first_artifact.create_ms}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def value_of(value: Any) -> JSON:
    """An MLMD ``Value`` as JSON: numbers, strings and booleans as they are, a struct as a dict,
    a packed proto as ``{"proto": type_url}`` (its bytes are not decoded)."""
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(value.struct_value)
    if kind == "proto_value":
        return {"proto": value.proto_value.type_url}
    return getattr(value, kind) if kind else None


def _values(mapping: Any) -> dict[str, JSON]:
    return {key: value_of(mapping[key]) for key in sorted(mapping)}


def _context(context: Any) -> MlmdContext:
    properties = {**_values(context.custom_properties), **_values(context.properties)}
    return MlmdContext(context.id, context.type, context.name, context.create_time_since_epoch, properties)


def _execution(pb: Any, execution: Any, context_ids: tuple[int, ...]) -> MlmdExecution:
    return MlmdExecution(
        id=execution.id,
        type=execution.type,
        name=execution.name,
        state=pb.Execution.State.Name(execution.last_known_state),
        create_ms=execution.create_time_since_epoch,
        update_ms=execution.last_update_time_since_epoch or execution.create_time_since_epoch,
        properties=_values(execution.properties),
        custom_properties=_values(execution.custom_properties),
        context_ids=context_ids,
    )


def _artifact(pb: Any, artifact: Any) -> MlmdArtifact:
    return MlmdArtifact(
        id=artifact.id,
        type=artifact.type,
        uri=artifact.uri,
        name=artifact.name,
        state=pb.Artifact.State.Name(artifact.state),
        create_ms=artifact.create_time_since_epoch,
        properties=_values(artifact.properties),
        custom_properties=_values(artifact.custom_properties),
    )


def _event(pb: Any, event: Any) -> MlmdEvent:
    path: tuple[str | int, ...] = tuple(
        step.key if step.WhichOneof("value") == "key" else step.index for step in event.path.steps
    )
    return MlmdEvent(
        execution_id=event.execution_id,
        artifact_id=event.artifact_id,
        type=pb.Event.Type.Name(event.type),
        path=path,
        ms=event.milliseconds_since_epoch,
    )
