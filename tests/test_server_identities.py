"""Authentication on ``pipeledger server``: ``server init``, API keys (expiry, revocation,
disabled principals), passwords and their lockout, the identity routes' own checks, and that the
database, the files and the log hold no key or password in clear.

Real server processes (``tests/rest_server.py``) in front of SQLite, PostgreSQL and MySQL; argon2
runs with its test profile (``PIPELEDGER_ARGON2_PROFILE=test``), the default being the
recommended one (checked below).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text, update

from pipeledger.exceptions import AccessDeniedError, AuthenticationError, ConfigError, NotFoundError
from pipeledger.metadata_store.rest.identities import IdentityClient, parse_duration
from pipeledger.metadata_store.rest.transport import Transport
from pipeledger.metadata_store.sql.schema import api_keys, metadata
from pipeledger.models import utcnow
from tests.rest_server import ServerProcess, pipeledger
from tests.servers import enabled_backends, scratch_database

KEY = re.compile(r"pl_[0-9a-f]{32}_[A-Za-z0-9_-]{43}")
PASSWORD = "correct horse battery staple"
TEST_PROFILE = {"PIPELEDGER_ARGON2_PROFILE": "test"}


class Secured:
    """A server whose store has an administrator (``root``), and every secret the tests made."""

    def __init__(self, server: ServerProcess, admin_key: str, init_output: str) -> None:
        self.server = server
        self.admin_key = admin_key
        self.init_output = init_output
        self.secrets: list[str] = [admin_key]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, key: str | None) -> IdentityClient:
        return IdentityClient(Transport(self.url, token=key, retry_window=0))

    def admin(self) -> IdentityClient:
        return self.client(self.admin_key)

    def new_user(self, name: str, **options: Any) -> str:
        """Create ``name`` (its first key is returned and remembered as a secret)."""
        with self.admin() as admin:
            made = admin.create_user(name, **options)
        key = str(made["key"]["key"])
        self.secrets.append(key)
        return key

    def engine_url(self) -> str:
        if self.server.backend == "sqlite":
            return f"sqlite:///{self.server.sqlite_path}"
        assert self.server.database_url is not None
        return self.server.database_url.render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=enabled_backends())
def secured(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """``server init`` then ``server start`` (two workers on SQLite), per database."""
    backend: str = request.param
    with scratch_database(backend) if backend != "sqlite" else _nothing() as url:
        directory = tmp_path_factory.mktemp(f"secured-{backend}")
        workers = 2 if backend == "sqlite" else 1
        server = ServerProcess(backend, directory, url, env=TEST_PROFILE, workers=workers)
        init = pipeledger(server.home, "server", "init", "--stack", "served", "--admin", "root", env=TEST_PROFILE)
        assert init.returncode == 0, init.stderr
        (admin_key,) = KEY.findall(init.stdout)
        server.start()
        try:
            yield Secured(server, admin_key, init.stdout)
        finally:
            server.stop()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def call(secured: Secured, key: str | None) -> httpx.Response:
    """``GET /api/v1/auth/whoami``: any authenticated caller may (a user of no project too,
    whom the store routes' rules refuse with 403)."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.get(secured.url + "/api/v1/auth/whoami", headers=headers)


def refused(answer: httpx.Response, *words: str) -> str:
    assert answer.status_code == 401, answer.text
    error = answer.json()["error"]
    assert error["type"] == "AuthenticationError"
    message = str(error["message"])
    assert "\n" not in message and all(word in message for word in words), message
    return message


# ------------------------------------------------------------------ server init


def test_init_prints_the_key_once_and_refuses_a_second_time(secured: Secured) -> None:
    assert len(KEY.findall(secured.init_output)) == 1
    again = pipeledger(secured.server.home, "server", "init", "--stack", "served", env=TEST_PROFILE)
    assert again.returncode == 1 and "users already" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and not KEY.search(again.stdout + again.stderr)
    assert "authentication: API keys" in secured.server.log.read_text()


def test_users_need_a_sql_store() -> None:
    """A server on a kubeflow store has no users: init says so in one line (the store's class
    decides, so no ML Metadata service is needed here)."""
    from types import SimpleNamespace

    from pipeledger.server.security.directory import Directory

    with pytest.raises(ConfigError, match="serve a stack whose metadata store is sqlite, mysql or postgresql"):
        Directory.of_store(SimpleNamespace(flavor="kubeflow"))  # type: ignore[arg-type]


# ------------------------------------------------------------------ keys


def test_every_api_request_needs_a_valid_key(secured: Secured) -> None:
    assert call(secured, secured.admin_key).status_code == 200
    refused(call(secured, None), "pipeledger login URL")
    refused(call(secured, "not-a-key"), "malformed")
    key_id = KEY.match(secured.admin_key).group(0)[3:35]  # type: ignore[union-attr]
    refused(call(secured, f"pl_{key_id}_{'A' * 43}"), "not valid")
    refused(call(secured, f"pl_{'0' * 32}_{'A' * 43}"), "not valid")
    basic = httpx.post(secured.url + "/api/v1/store/count_runs", json={}, headers={"Authorization": "Basic eDp5"})
    refused(basic, "Bearer")
    assert httpx.get(secured.url + "/health").status_code == 200  # probes need no key
    with secured.client(None) as anonymous, pytest.raises(AuthenticationError, match="pipeledger login URL"):
        anonymous.whoami()


def test_an_expired_key_is_refused(secured: Secured) -> None:
    key = secured.new_user("expiring")
    assert call(secured, key).status_code == 200
    engine = create_engine(secured.engine_url())
    try:
        with engine.begin() as conn:
            past = utcnow() - timedelta(minutes=1)
            conn.execute(update(api_keys).where(api_keys.c.id == key[3:35]).values(expires_at=past))
    finally:
        engine.dispose()
    refused(call(secured, key), "expired", "pipeledger login URL")


def test_a_revoked_key_is_refused_at_once_by_every_worker(secured: Secured) -> None:
    key = secured.new_user("revoked")
    for _ in range(4):  # new connections: on SQLite, both workers verified (and cached) the key
        assert call(secured, key).status_code == 200
    with secured.client(key) as own:
        own.revoke_key(key[3:35])
    for _ in range(8):
        refused(call(secured, key), "revoked")


def test_a_disabled_principal_is_refused_until_enabled(secured: Secured) -> None:
    key = secured.new_user("leaver")
    assert call(secured, key).status_code == 200
    with secured.admin() as admin:
        admin.set_disabled("leaver")
        for _ in range(4):
            refused(call(secured, key), "disabled")
        admin.set_disabled("leaver", False)
    assert call(secured, key).status_code == 200
    with secured.admin() as admin, pytest.raises(ConfigError, match="cannot disable yourself"):
        admin.set_disabled("root")


def test_a_key_can_expire_and_keys_are_listed_without_secrets(secured: Secured) -> None:
    key = secured.new_user("lister")
    with secured.client(key) as own:
        made = own.create_key(label="laptop", expires=parse_duration("30d"))
        secured.secrets.append(made["key"])
        listed = own.list_keys()
    assert [k["label"] for k in listed] == ["first", "laptop"]
    assert listed[1]["expires_at"] is not None and listed[0]["expires_at"] is None
    assert all(set(k) == {"id", "principal", "label", "created_at", "expires_at", "revoked_at", "last_used_at"}
               for k in listed)  # fmt: skip
    assert call(secured, made["key"]).status_code == 200


# ------------------------------------------------------------------ passwords


def test_password_login_gives_an_expiring_token_and_logout_revokes_it(secured: Secured) -> None:
    secured.new_user("walker", password=PASSWORD)
    secured.secrets.append(PASSWORD)
    with secured.client(None) as anonymous:
        token = anonymous.login("walker", PASSWORD)
    secured.secrets.append(token["key"])
    assert token["info"]["label"] == "login" and token["info"]["expires_at"] is not None
    with secured.client(token["key"]) as session:
        assert session.whoami()["name"] == "walker"
        assert session.logout() == token["info"]["id"]
    refused(call(secured, token["key"]), "revoked")


def test_failed_logins_lock_the_user_and_say_so(secured: Secured) -> None:
    secured.new_user("guessed", password=PASSWORD)
    with secured.client(None) as anonymous:
        for _ in range(5):
            with pytest.raises(AuthenticationError, match="wrong user name or password"):
                anonymous.login("guessed", "wrong password!")
        with pytest.raises(AuthenticationError, match="too many failed logins for 'guessed'"):
            anonymous.login("guessed", PASSWORD)  # locked: even the right password
        with pytest.raises(AuthenticationError, match="wrong user name or password"):
            anonymous.login("nobody-of-that-name", PASSWORD)  # the same answer as a wrong password
    with secured.admin() as admin:
        admin.set_password("guessed", PASSWORD)  # an administrator unlocks
    with secured.client(None) as anonymous:
        secured.secrets.append(anonymous.login("guessed", PASSWORD)["key"])


def test_a_service_account_has_no_password(secured: Secured) -> None:
    with secured.admin() as admin, pytest.raises(ConfigError, match="API keys only"):
        admin.create_user("bot-with-password", service=True, password=PASSWORD)
    key = secured.new_user("ci-bot", service=True)
    with secured.client(key) as bot:
        assert bot.whoami()["kind"] == "service"


# ------------------------------------------------------------------ the identity routes' checks


def test_identity_routes_check_their_caller_without_revealing_what_exists(secured: Secured) -> None:
    carol = secured.new_user("carol")
    with secured.admin() as admin:
        admin.create_project("vision")
        admin.create_project("audio")
        admin.set_member("vision", "carol", "admin")
        root_keys = admin.list_keys()
    with secured.client(carol) as client:
        with pytest.raises(AccessDeniedError, match="only a server administrator may list users"):
            client.list_users()
        with pytest.raises(AccessDeniedError, match="server administrator"):
            client.create_project("mine")
        with pytest.raises(AccessDeniedError, match="server administrator"):
            client.create_key(user="root")
        with pytest.raises(AccessDeniedError, match="server administrator"):
            client.list_keys(every_user=True)
        # Someone else's key and a key that does not exist: the same answer.
        with pytest.raises(NotFoundError) as theirs:
            client.revoke_key(root_keys[0]["id"])
        with pytest.raises(NotFoundError) as missing:
            client.revoke_key("0" * 32)
        assert str(theirs.value).replace(root_keys[0]["id"], "X") == str(missing.value).replace("0" * 32, "X")
        # A project it does not administer and one that does not exist: the same answer.
        with pytest.raises(AccessDeniedError) as other:
            client.list_members("audio")
        with pytest.raises(AccessDeniedError) as absent:
            client.list_members("no-such-project")
        assert str(other.value).replace("audio", "X") == str(absent.value).replace("no-such-project", "X")
        # In its own project it manages members.
        client.set_member("vision", "carol", "admin")
        assert [p["name"] for p in client.list_projects()] == ["vision"]
        assert client.whoami()["roles"] == {"vision": "admin"}
    with secured.admin() as admin:
        assert root_keys[0]["revoked_at"] is None and admin.list_keys()[0]["revoked_at"] is None
        admin.remove_member("vision", "carol")
    with secured.client(carol) as client, pytest.raises(AccessDeniedError):
        client.list_members("vision")


# ------------------------------------------------------------------ nothing in clear


def test_no_key_or_password_is_stored_or_logged_in_clear(secured: Secured) -> None:
    """Runs last in the module: every secret the tests made is looked for in every row of every
    table, in the database's files, in the server's log and its home."""
    assert len(secured.secrets) >= 5
    engine = create_engine(secured.engine_url())
    try:
        with engine.connect() as conn:
            dumped = "\n".join(
                repr(tuple(row))
                for table in metadata.sorted_tables
                for row in conn.execute(text(f"SELECT * FROM {table.name}"))
            )
    finally:
        engine.dispose()
    assert "$argon2id$" in dumped  # the hashes are there...
    files = [secured.server.log, *[p for p in secured.server.home.rglob("*") if p.is_file()]]
    if secured.server.backend == "sqlite":
        files += [p for p in secured.server.sqlite_path.parent.glob("server.db*")]
    stored = dumped.encode() + b"".join(p.read_bytes() for p in files)
    for secret in secured.secrets:
        secret_part = secret.split("_", 2)[-1] if KEY.fullmatch(secret) else secret
        assert secret_part.encode() not in stored  # ...never a key's secret or a password


# ------------------------------------------------------------------ without users


def test_a_server_without_users_lets_everyone_in_as_administrator(rest_servers: Any) -> None:
    server: ServerProcess = rest_servers.get("sqlite")
    with IdentityClient(Transport(server.url, retry_window=0)) as client:
        me = client.whoami()
        assert me["name"] == "anonymous" and me["server_admin"] and not me["authentication"]
        with pytest.raises(ConfigError, match="pipeledger server init"):
            client.list_users()
    assert "authentication: none yet" in server.log.read_text()  # the start message says so
    # A token is ignored, as before authentication existed (a proxy in front may check its own).
    answer = httpx.post(server.url + "/api/v1/store/count_runs", json={}, headers={"Authorization": "Bearer x"})
    assert answer.status_code == 200


def test_binding_beyond_loopback_needs_users_or_the_insecure_flag() -> None:
    from pipeledger.server.process import ServerOptions, check_bind

    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0.*pipeledger server init"):
        check_bind(ServerOptions(host="0.0.0.0"), authenticated=False)
    check_bind(ServerOptions(host="0.0.0.0"), authenticated=True)
    check_bind(ServerOptions(host="0.0.0.0", insecure_no_auth=True), authenticated=False)
    check_bind(ServerOptions(host="127.0.0.1"), authenticated=False)


def test_the_default_argon2_profile_is_the_recommended_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import profiles

    from pipeledger.server.security import hashing

    monkeypatch.delenv(hashing.PROFILE_VARIABLE, raising=False)
    hashing.hasher.cache_clear()
    try:
        recommended = hashing.hasher()
        assert recommended.memory_cost == profiles.RFC_9106_LOW_MEMORY.memory_cost
        assert recommended.time_cost == profiles.RFC_9106_LOW_MEMORY.time_cost
        monkeypatch.setenv(hashing.PROFILE_VARIABLE, "weak")
        hashing.hasher.cache_clear()
        with pytest.raises(ValueError, match="recommended"):
            hashing.hasher()
    finally:
        hashing.hasher.cache_clear()


# ------------------------------------------------------------------ in process: lockout, limiter


def test_the_lockout_doubles_with_each_failure_and_a_success_resets_it(tmp_path: Path) -> None:
    from pipeledger.metadata_store.sql import Database, SqlMetadataStore
    from pipeledger.server.security.directory import FIRST_LOCK, LOCK_AFTER, MAX_LOCK, Directory

    now = [utcnow()]
    store = SqlMetadataStore(
        Database(f"sqlite:///{tmp_path / 'm.db'}", display_name="t"), flavor="sqlite", auto_upgrade=True
    )
    directory = Directory(store.db, clock=lambda: now[0])
    directory.create_principal("dana", password=PASSWORD)
    locks = []
    for _attempt in range(LOCK_AFTER + 3):
        with pytest.raises(AuthenticationError, match="wrong user name or password"):
            directory.login("dana", "not the password")
        locked_until = directory._principal_row("dana")["locked_until"]
        locks.append(None if locked_until is None else locked_until - now[0])
        if locked_until is not None:
            with pytest.raises(AuthenticationError, match="too many failed logins"):
                directory.login("dana", PASSWORD)
            now[0] = locked_until
    assert locks[: LOCK_AFTER - 1] == [None] * (LOCK_AFTER - 1)
    assert locks[LOCK_AFTER - 1 :] == [FIRST_LOCK, 2 * FIRST_LOCK, 4 * FIRST_LOCK, 8 * FIRST_LOCK]
    assert all(lock <= MAX_LOCK for lock in locks if lock is not None)
    directory.login("dana", PASSWORD)  # after the lock: the right password works and resets the count
    assert directory._principal_row("dana")["failed_logins"] == 0
    store.close()


def test_the_address_limiter_refuses_after_the_limit_within_the_window() -> None:
    from pipeledger.server.security.limits import FailureLimiter

    now = [1000.0]
    limiter = FailureLimiter(limit=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
        now[0] += 1
    assert limiter.retry_after("10.0.0.1") == pytest.approx(57.0)
    assert limiter.retry_after("10.0.0.2") is None  # per address
    now[0] += 57.0
    assert limiter.retry_after("10.0.0.1") is None  # the first failure left the window


def test_a_session_authenticator_is_asked_when_there_is_no_key(tmp_path: Path) -> None:
    """The hook the web UI's cookie sessions use: ``app.state.session_authenticator`` is asked
    for requests without an ``Authorization`` header (in process: FastAPI's test client)."""
    from fastapi import Request
    from fastapi.testclient import TestClient

    from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
    from pipeledger.server.app import create_app
    from pipeledger.server.security import Principal, Role

    store_path = tmp_path / "s.db"
    app = create_app(lambda: open_sqlite_store(SqliteMetadataStoreConfig(path=str(store_path))))
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/api/v1/auth/whoami").json()["name"] == "anonymous"  # no users yet
        app.state.directory.create_principal("ui-user")  # now the server authenticates
        assert client.get("/api/v1/auth/whoami").status_code == 401

        async def session(request: Request) -> Principal | None:
            if request.cookies.get("session") != "valid":
                return None
            return Principal(name="ui-user", kind="user", roles={"vision": Role.READ})

        app.state.session_authenticator = session
        client.cookies.set("session", "valid")
        me = client.get("/api/v1/auth/whoami").json()
        assert me["name"] == "ui-user" and me["roles"] == {"vision": "read"}
        client.cookies.set("session", "forged")
        assert client.get("/api/v1/auth/whoami").status_code == 401
