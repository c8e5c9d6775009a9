"""Two teams on one server, end to end: ``pipeledger`` subprocesses and real pipelines
(:mod:`tests.pipelines`) on ``rest`` stacks against one ``pipeledger server`` process.

alice writes in project ``alpha``, bob in ``beta``; rita only reads ``alpha``. Each sees only its
project's runs in ``run list``, search and lineage; rita's attempts to run a pipeline, tag and
delete a run are refused in one line; the audit log (``pipeledger audit list``) shows all of it.
Then the stored data is searched for every key and password in clear: none is there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rest_server import CLI, ServerProcess

KEY = re.compile(r"pl_[0-9a-f]{32}_[A-Za-z0-9_-]{43}")
ENV = {"PIPELEDGER_ARGON2_PROFILE": "test"}
PASSWORD = "rita's long enough password"
RUN = "from tests.pipelines import training; import sys; training(lr=float(sys.argv[1]))"
RUN_BOB = "from tests.pipelines import forecasting; import sys; forecasting(lr=float(sys.argv[1]))"


def run(home: Path, *args: str, stdin: str | None = None, code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-c", CLI, *args]
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, **ENV, "PIPELEDGER_HOME": str(home), "PYTHONPATH": os.pathsep.join([root + "/src", root])}
    return subprocess.run(command, env=env, input=stdin, capture_output=True, text=True, timeout=300, cwd=root)


def ok(home: Path, *args: str, stdin: str | None = None) -> str:
    done = run(home, *args, stdin=stdin)
    assert done.returncode == 0, f"pipeledger {' '.join(args)}: {done.stderr}"
    return done.stdout


def refused(home: Path, *args: str, code: str | None = None) -> str:
    """The one-line error of a refused command (exit 1, no traceback)."""
    done = run(home, *args, code=code)
    assert done.returncode == 1, done.stdout
    line = done.stderr.strip()
    assert "Traceback" not in line and len(line.splitlines()) == 1, line
    return line


def as_json(home: Path, *args: str) -> Any:
    return json.loads(ok(home, *args, "--json"))


@pytest.fixture
def team(tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, Path], dict[str, str]]]:
    server = ServerProcess("sqlite", tmp_path, env=ENV)
    init = run(server.home, "server", "init", "--stack", "served", "--admin", "root")
    assert init.returncode == 0, init.stderr
    (root_key,) = KEY.findall(init.stdout)
    server.start()
    homes = {name: tmp_path / name for name in ("admin", "alice", "bob", "rita")}
    keys = {"root": root_key}
    try:
        ok(homes["admin"], "login", server.url, "--stdin", "--stack", "team", stdin=root_key + "\n")
        for project in ("alpha", "beta"):
            ok(homes["admin"], "project", "create", project)
        for user, project, role in (("alice", "alpha", "write"), ("bob", "beta", "write"), ("rita", "alpha", "read")):
            password = ["--password"] if user == "rita" else []
            made = ok(homes["admin"], "user", "create", user, *password, stdin=f"{PASSWORD}\n{PASSWORD}\n")
            (keys[user],) = KEY.findall(made)
            ok(homes["admin"], "project", "member", "add", project, user, "--role", role)
        for user, project in (("alice", "alpha"), ("bob", "beta")):
            ok(homes[user], "login", server.url, "--stdin", "--stack", "team", stdin=keys[user] + "\n")
            ok(homes[user], "metadata-store", "update", "team", f"--project={project}")
        ok(homes["rita"], "login", server.url, "--user", "rita", "--stdin", "--stack", "team", stdin=PASSWORD + "\n")
        yield server, homes, keys
    finally:
        server.stop()


def test_two_projects_on_one_server(team: tuple[ServerProcess, dict[str, Path], dict[str, str]]) -> None:
    server, homes, keys = team
    alice, bob, rita, admin = homes["alice"], homes["bob"], homes["rita"], homes["admin"]
    for home, lr, code in ((alice, "0.1", RUN), (alice, "0.2", RUN), (bob, "0.3", RUN_BOB)):
        done = run(home, lr, code=code)
        assert done.returncode == 0, done.stderr

    # Each sees only its own project's runs: run list, search, lineage.
    alice_runs = as_json(alice, "run", "list")
    bob_runs = as_json(bob, "run", "list")
    assert len(alice_runs) == 2 and {r["project"] for r in alice_runs} == {"alpha"}
    assert len(bob_runs) == 1 and {r["project"] for r in bob_runs} == {"beta"}
    assert {r["id"] for r in as_json(rita, "run", "list")} == {r["id"] for r in alice_runs}
    assert len(as_json(admin, "run", "list")) == 3
    assert as_json(bob, "run", "list", "--filter", "params.lr >= 0.1") == bob_runs
    found = as_json(alice, "run", "list", "--filter", "params.lr >= 0.1")
    assert {r["id"] for r in found} == {r["id"] for r in alice_runs}
    alice_run = json.loads(ok(alice, "run", "show", alice_runs[0]["name"], "--json"))
    model = next(s["outputs"]["model"] for s in alice_run["steps"] if "model" in s["outputs"])
    lineage = ok(alice, "lineage", model["id"], "--format", "json")
    assert alice_runs[0]["name"] in lineage
    bob_tries = refused(bob, "lineage", model["id"], "--format", "json")
    assert model["id"] in bob_tries and "alpha" not in bob_tries  # as if it did not exist
    hidden = refused(bob, "run", "show", alice_runs[0]["name"])
    missing = refused(bob, "run", "show", "training-999")
    assert hidden.replace(alice_runs[0]["name"], "X") == missing.replace("training-999", "X")

    # rita reads alpha, but may not run, tag or delete there.
    attempt = run(rita, "0.5", code=RUN)  # a pipeline is a Python call: its error is the last line
    assert attempt.returncode == 1
    last = attempt.stderr.strip().splitlines()[-1]
    assert last.startswith("pipeledger.exceptions.PermissionDeniedError: ") and "recording runs needs write" in last
    no_tag = refused(rita, "run", "tag", alice_runs[0]["name"], "+prod")
    assert "read access to project 'alpha'" in no_tag and "tagging needs write" in no_tag
    no_delete = refused(rita, "run", "delete", alice_runs[0]["name"], "--yes")
    assert re.search(r"needs (admin|write) access", no_delete), no_delete  # refused at its first step
    assert len(as_json(alice, "run", "list")) == 2  # nothing changed

    # The audit log shows all of it; only the server administrator reads it.
    assert "server administrator" in refused(alice, "audit", "list")
    events = as_json(admin, "audit", "list", "--limit", "1000")
    by = {(e["principal"], e["action"], e["outcome"]) for e in events}
    assert ("alice", "store.create_run", "allowed") in by and ("bob", "store.create_run", "allowed") in by
    assert ("rita", "store.create_run", "denied") in by
    assert ("rita", "store.change_tags", "denied") in by
    assert {("rita", a, "denied") for a in ("store.delete_run", "store.deletion_preview", "store.store_identity")} & by
    assert {("bob", a, "denied") for a in ("store.lineage", "store.get_artifact")} & by  # 404s hiding alpha's
    assert ("alice", "audit.list", "denied") in by
    hidden_one = next(e for e in events if e["principal"] == "bob" and e["action"] == "store.get_artifact")
    assert hidden_one["status"] == 404 and hidden_one["project"] == "alpha" and hidden_one["remote"] == "127.0.0.1"
    denied_only = as_json(admin, "audit", "list", "--filter", "outcome=denied", "--filter", "principal=rita")
    assert denied_only and all(e["principal"] == "rita" and e["outcome"] == "denied" for e in denied_only)

    # Stored data: the database, the server's home and every user's home hold no key or
    # password in clear (only the token files that `login` wrote, mode 0600, hold a user's own).
    server.stop()
    secrets = [*keys.values(), PASSWORD, *(k[36:] for k in keys.values())]
    places = [server.sqlite_path, server.home, server.log, *homes.values()]
    for place in places:
        files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
        for file in files:
            if file.parent.name == "credentials" and file.suffix == ".token":
                assert file.stat().st_mode & 0o077 == 0
                continue
            data = file.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret[:6]}... in clear in {file}"
