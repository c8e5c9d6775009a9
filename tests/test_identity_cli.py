"""The identity commands end to end, each a ``pipeledger`` subprocess against a real server:
``server init``, ``login`` (a 0600 token file, a stack that refers to it and holds no token),
``user``, ``api-key``, ``project`` and ``project member``, ``logout``; their ``--json`` shapes are
the documented ones (docs/cli-json.md), their errors one line with exit status 1."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rest_server import ServerProcess, pipeledger
from tests.test_cli_json import documented_fields

KEY = re.compile(r"pl_[0-9a-f]{32}_[A-Za-z0-9_-]{43}")
TEST_PROFILE = {"PIPELEDGER_ARGON2_PROFILE": "test"}
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A SQLite server after ``server init --admin root``, and root's key."""
    directory = tmp_path_factory.mktemp("identity-cli")
    process = ServerProcess("sqlite", directory, env=TEST_PROFILE)
    init = pipeledger(process.home, "server", "init", "--stack", "served", "--admin", "root", env=TEST_PROFILE)
    assert init.returncode == 0, init.stderr
    (key,) = KEY.findall(init.stdout)
    process.start()
    try:
        yield process, key
    finally:
        process.stop()


def run(home: Path, *args: str, stdin: str | None = None) -> Any:
    """``pipeledger ARGS`` in ``home`` (standard input ``stdin``); the completed process."""
    import os
    import subprocess
    import sys

    from tests.rest_server import CLI

    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env={**os.environ, "PIPELEDGER_HOME": str(home), **TEST_PROFILE},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(home: Path, *args: str, stdin: str | None = None) -> str:
    result = run(home, *args, stdin=stdin)
    assert result.returncode == 0, f"pipeledger {' '.join(args)}: {result.stderr}"
    return str(result.stdout)


def fails(home: Path, *args: str, words: tuple[str, ...] = (), stdin: str | None = None) -> str:
    result = run(home, *args, stdin=stdin)
    assert result.returncode == 1, result.stdout
    line = str(result.stderr).strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert all(word in line for word in words), line
    return line


def as_json(home: Path, *args: str) -> Any:
    return json.loads(ok(home, *args, "--json"))


def test_login_stores_the_token_privately_and_the_stack_refers_to_it(
    server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    process, root_key = server
    home = tmp_path / "alice-home"
    shown = ok(home, "login", process.url, "--stdin", "--stack", "team", stdin=root_key + "\n")
    assert "as root (server administrator)" in shown and "Stack 'team' created" in shown
    token_file = home / "credentials" / "team.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert token_file.read_text().strip() == root_key
    holders = [p for p in home.rglob("*") if p.is_file() and root_key.encode() in p.read_bytes()]
    assert holders == [token_file]  # the stack's configuration holds the reference only
    config = (home / "config.yaml").read_text()
    assert f"${{file:{token_file}}}" in config and KEY.search(config) is None
    assert "No run" in ok(home, "run", "list")  # the stack is active and talks to the server
    # Logging in again updates the same stack.
    again = ok(home, "login", process.url, "--stdin", "--stack", "team", stdin=root_key + "\n")
    assert "Stack 'team' updated" in again
    # A wrong key: one line, nothing saved.
    wrong = run(home, "login", process.url, "--stdin", "--stack", "other", stdin="pl_" + "0" * 32 + "_" + "A" * 43)
    assert wrong.returncode == 1 and "not valid" in wrong.stderr
    assert not (home / "credentials" / "other.token").exists()


def test_users_keys_projects_and_members_end_to_end(server: tuple[ServerProcess, str], tmp_path: Path) -> None:
    process, root_key = server
    admin = tmp_path / "admin"
    ok(admin, "login", process.url, "--stdin", "--stack", "team", stdin=root_key + "\n")

    made = ok(admin, "user", "create", "erin", "--password", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    (erin_key,) = KEY.findall(made)
    bot = ok(admin, "user", "create", "nightly-bot", "--service", "--key-expires", "90d")
    assert len(KEY.findall(bot)) == 1 and "expires" in bot
    fails(admin, "user", "create", "erin", words=("exists already",))
    users = {u["name"]: u for u in as_json(admin, "user", "list")}
    assert users["erin"]["has_password"] and users["nightly-bot"]["kind"] == "service"
    assert users["root"]["server_admin"] and not users["erin"]["server_admin"]

    ok(admin, "project", "create", "vision", "--description", "image models")
    fails(admin, "project", "create", "vision", words=("exists already",))
    ok(admin, "project", "member", "add", "vision", "erin", "--role", "admin")
    ok(admin, "project", "member", "add", "vision", "nightly-bot", "--role", "write")
    members = as_json(admin, "project", "member", "list", "vision")
    assert [(m["user"], m["role"]) for m in members] == [("erin", "admin"), ("nightly-bot", "write")]
    fails(admin, "project", "member", "add", "vision", "nobody", words=("no user or service account named 'nobody'",))

    # erin logs in with her password, sees her project, manages its members, not users.
    erin = tmp_path / "erin"
    ok(erin, "login", process.url, "--user", "erin", "--stdin", "--stack", "team", stdin=PASSWORD + "\n")
    assert [p["name"] for p in as_json(erin, "project", "list")] == ["vision"]
    ok(erin, "project", "member", "remove", "vision", "nightly-bot")
    assert [m["user"] for m in as_json(erin, "project", "member", "list", "vision")] == ["erin"]
    fails(erin, "user", "list", words=("only a server administrator",))
    fails(erin, "project", "create", "hers", words=("only a server administrator",))

    # Her keys: the login token, the first key; a new one, revoked.
    created = ok(erin, "api-key", "create", "--label", "laptop", "--expires", "30d")
    (laptop,) = KEY.findall(created)
    keys = as_json(erin, "api-key", "list")
    assert sorted(k["label"] for k in keys) == ["first", "laptop", "login"]
    laptop_id = laptop[3:35]
    ok(erin, "api-key", "revoke", laptop_id)
    assert laptop_id not in [k["id"] for k in as_json(erin, "api-key", "list")]
    assert laptop_id in [k["id"] for k in as_json(erin, "api-key", "list", "--revoked")]
    fails(erin, "api-key", "revoke", root_key[3:35], words=("among yours",))
    assert erin_key not in ok(admin, "api-key", "list", "--all")

    # A disabled user's commands stop at once.
    ok(admin, "user", "disable", "erin")
    fails(erin, "project", "list", words=("'erin' is disabled",))
    ok(admin, "user", "enable", "erin")
    assert as_json(erin, "project", "list")

    # Logging out revokes the login token and deletes its file.
    shown = ok(erin, "logout")
    assert "revoked on the server" in shown and not (erin / "credentials" / "team.token").exists()
    fails(erin, "logout", words=("no login is saved",))
    fails(erin, "run", "list", words=("log in again with `pipeledger login URL`",))

    # The --json shapes are the documented ones.
    documented = documented_fields()
    for path, args in (
        ("user list", ()),
        ("api-key list", ()),
        ("project list", ()),
        ("project member list", ("vision",)),
    ):
        value = as_json(admin, *path.split(), *args)
        assert value and list(value[0]) == documented[path], path
        assert str(value[0].get("created_at", "+00:00")).endswith("+00:00"), path  # the times' convention


def test_identity_commands_need_a_server_stack(tmp_path: Path) -> None:
    fails(tmp_path / "h", "user", "list", words=("not a pipeledger server", "pipeledger login URL"))
    result = run(tmp_path / "h", "api-key", "create", "--expires", "tomorrow")
    assert result.returncode == 2 and "invalid duration" in result.stderr


def test_a_server_without_users_has_nothing_to_log_in_to(rest_servers: Any, tmp_path: Path) -> None:
    process: ServerProcess = rest_servers.get("sqlite")
    key = "pl_" + "0" * 32 + "_" + "A" * 43
    line = fails(tmp_path / "h", "login", process.url, "--stdin", words=("no users",), stdin=key)
    assert "server init" in line
