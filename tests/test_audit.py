"""The audit log: every write and every denied request is recorded, with who, what, where from
and the outcome, never a secret; written in the background without losing an event on a clean
stop; kept for the retention setting; read by server administrators only (route and CLI)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import Request
from fastapi.testclient import TestClient

from pipeledger.cli.main import cli
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
from pipeledger.metadata_store.rest.protocol import contract_methods
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.audit_queries import append_events, list_events, prune_events
from pipeledger.models import AuditEvent, AuditFilter, utcnow
from pipeledger.server.app import create_app
from pipeledger.server.errors import ApiError
from pipeledger.server.security import Role
from pipeledger.server.security.audit import (
    READ_METHODS,
    WRITE_METHODS,
    AuditLog,
    AuditSink,
    SqlAuditSink,
    note_denied,
    target_of,
)
from pipeledger.server.security.directory import Directory
from tests.servers import enabled_backends, open_empty_store

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def event(at: datetime = T0, **values: Any) -> AuditEvent:
    fields: dict[str, Any] = {"principal": "alice", "action": "store.create_run", "outcome": "allowed", "status": 200}
    return AuditEvent(at=at, **{**fields, **values})


# ------------------------------------------------------------------ classification


def test_every_contract_method_is_classified_read_or_write() -> None:
    """A method added to the contract must be put in one of the two sets, or writes through it
    would go unaudited (or reads flood the log)."""
    routed = set(contract_methods())
    assert READ_METHODS.isdisjoint(WRITE_METHODS)
    assert routed == READ_METHODS | WRITE_METHODS, (
        f"classify in pipeledger/server/security/audit.py: {sorted(routed ^ (READ_METHODS | WRITE_METHODS))}"
    )


def test_the_target_names_ids_and_names_only() -> None:
    from pipeledger.models import EntityKind

    found = target_of({"kind": EntityKind.RUN, "entity_id": "abc", "values": {"password": "hunter2"}})
    assert found == "entity_id=abc"
    assert target_of({"limit": 5}) is None


# ------------------------------------------------------------------ SQL queries, every database


@pytest.fixture(params=enabled_backends())
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlMetadataStore]:
    store = open_empty_store(request.param, tmp_path, request)
    assert isinstance(store, SqlMetadataStore)
    yield store
    store.close()


def test_events_are_appended_filtered_and_pruned(sql_store: SqlMetadataStore) -> None:
    db = sql_store.db
    append_events(
        db,
        [
            event(T0 - timedelta(days=100), principal="old"),
            event(T0, principal="alice", project="vision", target="run_id=r1"),
            event(T0 + timedelta(seconds=1), principal="bob", action="store.delete_run", outcome="denied", status=403),
            event(T0 + timedelta(seconds=2), principal=None, action="store.list_runs", outcome="denied", status=401),
            event(T0 + timedelta(seconds=3), principal="alice", action="artifacts.upload", detail="x" * 5000),
        ],
    )
    everything = list_events(db, AuditFilter())
    assert [e.principal for e in everything] == ["alice", None, "bob", "alice", "old"]  # newest first
    assert all(e.id is not None for e in everything)
    assert everything[0].detail is not None and len(everything[0].detail) <= 2000  # cut, not refused
    assert [e.principal for e in list_events(db, AuditFilter(outcome="denied"))] == [None, "bob"]
    assert [e.action for e in list_events(db, AuditFilter(action="store.*"))] == [
        "store.list_runs",
        "store.delete_run",
        "store.create_run",
        "store.create_run",
    ]
    assert [e.target for e in list_events(db, AuditFilter(project="vision"))] == ["run_id=r1"]
    window = AuditFilter(since=T0, until=T0 + timedelta(seconds=2))
    assert [e.principal for e in list_events(db, window)] == ["bob", "alice"]
    assert len(list_events(db, AuditFilter(limit=2))) == 2
    assert prune_events(db, T0 - timedelta(days=90)) == 1
    assert "old" not in {e.principal for e in list_events(db, AuditFilter())}


# ------------------------------------------------------------------ the background writer


class SlowSink(AuditSink):
    """Records batches; each write waits until the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[list[AuditEvent]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.pruned: list[datetime] = []

    def write(self, events: Any) -> None:
        self.gate.wait()
        self.batches.append(list(events))

    def prune(self, before: datetime) -> int:
        self.pruned.append(before)
        return 0


def test_recording_does_not_wait_for_the_store_and_a_clean_stop_writes_everything() -> None:
    sink = SlowSink()
    sink.gate.clear()  # the store is stuck: record() must still return
    audit = AuditLog(sink)
    for n in range(1200):
        audit.record(event(principal=f"p{n}"))
    assert sink.batches == []  # nothing written yet, nothing blocked
    sink.gate.set()
    audit.close()
    written = [e.principal for batch in sink.batches for e in batch]
    assert written == [f"p{n}" for n in range(1200)]  # all of them, in order
    assert max(len(batch) for batch in sink.batches) <= 500  # in batches


def test_a_failing_store_loses_no_event_silently(caplog: pytest.LogCaptureFixture) -> None:
    class Down(AuditSink):
        def write(self, events: Any) -> None:
            raise OSError("database is down")

    audit = AuditLog(Down())
    audit.record(event(principal="carol", action="store.delete_run"))
    assert audit.flush(10)
    audit.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeledger.audit"]
    assert any("audit event not stored" in line and "carol" in line and "store.delete_run" in line for line in lines)


def test_retention_prunes_at_start_and_never_with_zero(tmp_path: Path) -> None:
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "s.db")))
    assert isinstance(store, SqlMetadataStore)
    append_events(store.db, [event(T0 - timedelta(days=31), principal="old"), event(T0, principal="new")])
    keep_all = AuditLog(SqlAuditSink(store.db), retention_days=0, clock=lambda: T0)
    keep_all.close()
    assert {e.principal for e in list_events(store.db, AuditFilter())} == {"old", "new"}
    month = AuditLog(SqlAuditSink(store.db), retention_days=30, clock=lambda: T0)
    month.close()
    assert {e.principal for e in list_events(store.db, AuditFilter())} == {"new"}
    store.close()


# ------------------------------------------------------------------ the middleware and route


class Server:
    """An in-process application on a SQLite store with real principals and keys."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "server.db"
        setup = open_sqlite_store(SqliteMetadataStoreConfig(path=str(self.path)))
        directory = Directory.of_store(setup)
        _, root = directory.create_first_admin("root")
        directory.create_project("vision")
        directory.create_principal("alice")
        directory.set_member("vision", "alice", Role.WRITE)
        directory.set_member("default", "alice", Role.WRITE)
        self.keys = {"root": root.key, "alice": directory.issue_key("alice").key}
        setup.close()
        self.app = create_app(lambda: open_sqlite_store(SqliteMetadataStoreConfig(path=str(self.path))))

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"} if who else {}

    def events(self, client: TestClient) -> list[dict[str, Any]]:
        answer = client.get("/api/v1/audit/events", headers=self.headers("root"), params={"limit": 1000})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return [e for e in found if e["action"] != "audit.list"]


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path)


def test_writes_and_denials_are_recorded_reads_are_not(server: Server) -> None:
    with TestClient(server.app, base_url="http://localhost") as client:
        ok = client.post("/api/v1/store/list_runs", json={}, headers=server.headers("alice"))
        assert ok.status_code == 200  # a read: not audited
        tagged = client.post(
            "/api/v1/store/add_tags",
            json={"kind": "run", "entity_id": "nope", "tags": ["x"]},
            headers=server.headers("alice"),
        )
        assert tagged.status_code >= 400  # a failed write: audited as failed (or denied)
        anonymous = client.post("/api/v1/store/list_runs", json={})
        assert anonymous.status_code == 401
        forged = client.post("/api/v1/store/list_runs", json={}, headers={"Authorization": "Bearer pl_abc_def"})
        assert forged.status_code == 401
        refused = client.get("/api/v1/audit/events", headers=server.headers("alice"))
        assert refused.status_code == 403
        events = server.events(client)
    by_action = {(e["action"], e["principal"]): e for e in events}
    assert ("store.list_runs", "alice") not in by_action
    write = by_action[("store.add_tags", "alice")]
    assert write["outcome"] in ("failed", "denied") and write["target"] == "entity_id=nope"
    unauthenticated = [e for e in events if e["action"] == "store.list_runs" and e["principal"] is None]
    assert len(unauthenticated) == 2 and {e["status"] for e in unauthenticated} == {401}
    assert all(e["outcome"] == "denied" and e["remote"] for e in unauthenticated)
    assert any("API key" in (e["detail"] or "") for e in unauthenticated)
    # audit.list rows are filtered out by Server.events; read the denied one unfiltered:
    with TestClient(server.app, base_url="http://localhost") as client:
        raw = client.get(
            "/api/v1/audit/events", headers=server.headers("root"), params={"action": "audit.*", "outcome": "denied"}
        ).json()
    assert [(e["principal"], e["status"]) for e in raw] == [("alice", 403)]


def test_a_denial_answered_404_is_recorded_as_denied(server: Server) -> None:
    """Authorization answers 404 for an object in a project the caller cannot read (so that its
    existence is not revealed); the audit log still says it was a denial."""

    async def hidden(request: Request) -> None:
        note_denied(request, "alice has no role in project secret", project="secret", target="run_id=r9")
        raise ApiError(404, "NotFoundError", "no run r9")

    server.app.add_api_route("/api/v1/store/hidden_probe", hidden, methods=["POST"], name="hidden_probe")
    with TestClient(server.app, base_url="http://localhost") as client:
        assert client.post("/api/v1/store/hidden_probe", headers=server.headers("alice")).status_code == 404
        events = server.events(client)
    (found,) = [e for e in events if e["action"] == "store.hidden_probe"]
    assert found["outcome"] == "denied" and found["status"] == 404
    assert found["project"] == "secret" and found["detail"] == "alice has no role in project secret"


def test_no_secret_reaches_the_audit_log(server: Server) -> None:
    password = "correct horse battery staple 42"
    with TestClient(server.app, base_url="http://localhost") as client:
        client.post("/api/v1/users", json={"name": "dora", "password": password}, headers=server.headers("root"))
        client.post("/api/v1/auth/login", json={"user": "dora", "password": "wrong " + password})
        wrong = {"Authorization": "Bearer " + server.keys["alice"][:-2]}
        client.post("/api/v1/store/list_runs", json={}, headers=wrong)
        client.post("/api/v1/store/list_runs?token=" + server.keys["alice"], json={})
        text = json.dumps(server.events(client))
    for secret in (password, server.keys["alice"], server.keys["root"], server.keys["alice"][36:]):  # the secret part
        assert secret not in text
    assert server.path.read_bytes().find(password.encode()) == -1


def test_the_events_route_filters(server: Server) -> None:
    with TestClient(server.app, base_url="http://localhost") as client:
        for tag in ("a", "b"):
            client.post(
                "/api/v1/store/add_tags",
                json={"kind": "run", "entity_id": tag, "tags": ["t"]},
                headers=server.headers("alice"),
            )
        client.post("/api/v1/store/list_runs", json={})
        root = server.headers("root")
        alice = client.get("/api/v1/audit/events", headers=root, params={"principal": "alice"}).json()
        assert {e["action"] for e in alice} == {"store.add_tags"} and len(alice) == 2
        latest = client.get("/api/v1/audit/events", headers=root, params={"principal": "alice", "limit": 1}).json()
        assert latest[0]["target"] == "entity_id=b"
        future = (utcnow() + timedelta(hours=1)).isoformat()
        assert client.get("/api/v1/audit/events", headers=root, params={"since": future}).json() == []
        bad = client.get("/api/v1/audit/events", headers=root, params={"outcome": "maybe"})
        assert bad.status_code == 422


# ------------------------------------------------------------------ the CLI (on the database)


def test_audit_list_and_prune_on_the_servers_database(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "team.db"
    store: MetadataStore = open_sqlite_store(SqliteMetadataStoreConfig(path=str(path)))
    assert isinstance(store, SqlMetadataStore)
    append_events(
        store.db,
        [
            event(utcnow() - timedelta(days=200), principal="old"),
            event(utcnow() - timedelta(minutes=5), principal="bob", outcome="denied", status=403, remote="10.0.0.7"),
            event(utcnow() - timedelta(minutes=1), principal="alice", project="vision"),
        ],
    )
    store.close()
    runner = CliRunner()
    for command in (
        ["metadata-store", "register", "team", "--flavor=sqlite", f"--path={path}"],
        ["stack", "register", "team", "-m", "team"],
        ["stack", "set", "team"],
    ):
        result = runner.invoke(cli, command)
        assert result.exit_code == 0, result.output
    listed = runner.invoke(cli, ["audit", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    listed_events = json.loads(listed.stdout)
    assert [e["principal"] for e in listed_events] == ["alice", "bob", "old"]
    from tests.test_cli_json import documented_fields

    assert list(listed_events[0]) == documented_fields()["audit list"]
    denied = runner.invoke(cli, ["audit", "list", "--filter", "outcome=denied", "--filter", "since=1h"])
    assert denied.exit_code == 0 and "bob" in denied.stdout and "10.0.0.7" in denied.stdout
    assert "alice" not in denied.stdout
    bad = runner.invoke(cli, ["audit", "list", "--filter", "colour=red"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.stderr
    pruned = runner.invoke(cli, ["audit", "prune", "--older-than", "90d", "--yes"])
    assert pruned.exit_code == 0 and "Deleted 1 audit event" in pruned.stdout
    after = runner.invoke(cli, ["audit", "list", "--json", "--limit", "5"])
    assert [e["principal"] for e in json.loads(after.stdout)] == ["alice", "bob"]
