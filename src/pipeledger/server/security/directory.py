"""The identity store: principals, API keys, passwords, projects and members, in the SQL store's
database (tables of revision 0009, :mod:`pipeledger.metadata_store.sql.schema`).

:class:`Directory` is the one place that reads and writes those tables: authentication
(:meth:`Directory.authenticate`, :meth:`Directory.login`), the identity routes
(:mod:`pipeledger.server.identity_routes`), ``pipeledger server init``, and the authorization
rules (projects and members). Its methods block (database, argon2): the server calls them in a
worker thread.

Secrets: a key's or password's text never reaches the database; only argon2id hashes do
(:mod:`.hashing`). A key's text is returned once, by the call that makes it (:class:`IssuedKey`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from pipeledger.exceptions import AuthenticationError, ConfigError, NotFoundError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.sql.engine import Database, DuplicateRowError
from pipeledger.metadata_store.sql.fastpath import FastRead
from pipeledger.metadata_store.sql.schema import api_keys, principals, project_members, projects
from pipeledger.metadata_store.sql.store import SqlMetadataStore
from pipeledger.models import new_id, utcnow
from pipeledger.server.security.hashing import dummy_hash, hash_secret, verify_secret
from pipeledger.server.security.keys import KeyText, VerifiedKeys, new_key, parse_key
from pipeledger.server.security.principal import Principal, Role
from pipeledger.server.security.records import ApiKeyInfo, IssuedKey, MemberInfo, PrincipalInfo, ProjectInfo

#: Principal names: letters, digits and ``._@+-`` (e-mail addresses fit), at most 128.
PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
#: Project names: letters, digits and ``._-``, at most 64.
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Passwords shorter than this are refused.
MIN_PASSWORD_LENGTH = 12
#: Failed password logins in a row before the principal is locked.
LOCK_AFTER = 5
#: The first lock's length; each further failure doubles it, up to :data:`MAX_LOCK`.
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(hours=1)
#: How long a token from ``POST /api/v1/auth/login`` lasts unless the caller asks for less.
LOGIN_LIFETIME = timedelta(days=30)
#: The label of login tokens (``pipeledger logout`` revokes only those).
LOGIN_LABEL = "login"
#: ``api_keys.last_used_at`` is written at most this often per key (not on every request).
LAST_USED_RESOLUTION = timedelta(minutes=1)
KINDS = ("user", "service")

#: The reads of every request, prebuilt (:mod:`pipeledger.metadata_store.sql.fastpath`).
_ANY_PRINCIPAL = FastRead(select(principals.c.id).limit(1))
_KEY_AND_ROLES = FastRead(
    select(
        api_keys.c.secret_hash,
        api_keys.c.expires_at,
        api_keys.c.revoked_at,
        api_keys.c.last_used_at,
        principals.c.id,
        principals.c.name,
        principals.c.kind,
        principals.c.server_admin,
        principals.c.disabled_at,
        project_members.c.project,
        project_members.c.role,
    )
    .join(principals, principals.c.id == api_keys.c.principal_id)
    .outerjoin(project_members, project_members.c.principal_id == principals.c.id)
    .where(api_keys.c.id == bindparam("b_key_id"))
)

_WRONG_CREDENTIALS = "wrong user name or password; try again, or log in with an API key (`pipeledger login URL`)"
_UNKNOWN_KEY = (
    "the API key is not valid on this server (unknown key, or a wrong secret); "
    "log in again with a valid key: `pipeledger login URL`"
)


def check_principal_name(name: str) -> None:
    """Refuse a principal name that is not :data:`PRINCIPAL_NAME`."""
    if not PRINCIPAL_NAME.fullmatch(name or ""):
        raise ConfigError(f"invalid user name {name!r}: use letters, digits and '._@+-', at most 128 characters")


def check_project_name(name: str) -> None:
    """Refuse a project name that is not :data:`PROJECT_NAME`."""
    if not PROJECT_NAME.fullmatch(name or ""):
        raise ConfigError(f"invalid project name {name!r}: use letters, digits and '._-', at most 64 characters")


def check_password(password: str) -> None:
    """Refuse a password shorter than :data:`MIN_PASSWORD_LENGTH` characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")


class Directory:
    """Principals, keys, projects and members of the database ``db``.

    Args:
        db: the SQL store's database (:attr:`SqlMetadataStore.db`).
        clock: the current time (tests pass another).
    """

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock
        self.verified = VerifiedKeys()
        self._last_used: dict[str, datetime] = {}
        self._required = False

    @classmethod
    def of_store(cls, store: MetadataStore) -> Directory:
        """The directory of a SQL metadata store.

        Raises:
            ConfigError: ``store`` is not a SQL store (users and keys live in its database).
        """
        if not isinstance(store, SqlMetadataStore):
            raise ConfigError(
                f"users and API keys are kept in the server's SQL database, and this metadata store is "
                f"{store.flavor!r}; serve a stack whose metadata store is sqlite, mysql or postgresql"
            )
        return cls(store.db)

    # ------------------------------------------------------------------ principals

    def has_principals(self) -> bool:
        """Whether any principal exists: then every request needs a key (one indexed read)."""
        with self.db.session() as session:
            return bool(_ANY_PRINCIPAL.all(session, {}))

    @property
    def authentication_known(self) -> bool:
        """Whether :meth:`authentication_required` already found principals (no database read)."""
        return self._required

    def authentication_required(self) -> bool:
        """Whether requests need a key: some principal exists. Once true it stays true (principals
        are disabled, never deleted), so only a server without principals reads the database here."""
        if not self._required:
            self._required = self.has_principals()
        return self._required

    def create_first_admin(self, name: str) -> tuple[PrincipalInfo, IssuedKey]:
        """Create the first server administrator ``name`` and an API key for it (no expiry), in
        one transaction that refuses when any principal exists (``pipeledger server init``).

        Raises:
            ConfigError: a principal exists already, or the name is invalid.
        """
        check_principal_name(name)

        def work(conn: Connection) -> tuple[str, IssuedKey]:
            if conn.execute(select(principals.c.id).limit(1)).first() is not None:
                raise ConfigError(
                    "this server has users already (`pipeledger server init` ran before); an administrator "
                    "makes more with `pipeledger user create` and keys with `pipeledger api-key create`"
                )
            principal_id = self._insert_principal(conn, name, "user", server_admin=True, password=None)
            return principal_id, self._insert_key(conn, principal_id, name, "init", None)

        _, issued = self.db.run_transaction(work)
        return self.get_principal(name), issued

    def create_principal(
        self, name: str, *, kind: str = "user", server_admin: bool = False, password: str | None = None
    ) -> PrincipalInfo:
        """Insert a user or service account (``kind``), with an argon2 hash of ``password`` if
        given (service accounts have none: they use keys).

        Raises:
            ConfigError: invalid name or kind, a password for a service account, a too short
                password, or the name is taken.
        """
        check_principal_name(name)
        if kind not in KINDS:
            raise ConfigError(f"unknown principal kind {kind!r}: use 'user' or 'service'")
        if password is not None:
            if kind == "service":
                raise ConfigError("a service account logs in with API keys only; give no password")
            check_password(password)
        hashed = hash_secret(password) if password is not None else None
        try:
            self.db.run_transaction(
                lambda conn: self._insert_principal(conn, name, kind, server_admin=server_admin, password=hashed)
            )
        except DuplicateRowError:
            raise ConfigError(f"a user or service account named {name!r} exists already; pick another name") from None
        return self.get_principal(name)

    def _insert_principal(
        self, conn: Connection, name: str, kind: str, *, server_admin: bool, password: str | None
    ) -> str:
        principal_id = new_id()
        conn.execute(
            insert(principals).values(
                id=principal_id,
                name=name,
                kind=kind,
                server_admin=server_admin,
                password_hash=password,
                failed_logins=0,
                created_at=self.clock(),
            )
        )
        return principal_id

    def get_principal(self, name: str) -> PrincipalInfo:
        """The principal ``name`` with its roles.

        Raises:
            NotFoundError: no principal of that name.
        """
        found = self.list_principals(names=[name])
        if not found:
            raise NotFoundError(f"no user or service account named {name!r}; `pipeledger user list` shows them")
        return found[0]

    def list_principals(self, names: Collection[str] | None = None) -> list[PrincipalInfo]:
        """Every principal (or those of ``names``), by name, with its roles."""
        query = select(principals).order_by(principals.c.name)
        if names is not None:
            query = query.where(principals.c.name.in_(list(names)))
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
            members = conn.execute(
                select(project_members).where(project_members.c.principal_id.in_([r["id"] for r in rows]))
            ).all()
        roles: dict[str, dict[str, str]] = {}
        for member in members:
            roles.setdefault(member.principal_id, {})[member.project] = member.role
        return [_principal_info(row, roles.get(row["id"], {})) for row in rows]

    def set_disabled(self, name: str, disabled: bool) -> PrincipalInfo:
        """Disable (or enable again) the principal ``name``: a disabled principal's keys and
        password are refused from its next request on, in every server process.

        Raises:
            NotFoundError: no such principal.
        """
        value = self.clock() if disabled else None
        self._update_principal(name, disabled_at=value)
        return self.get_principal(name)

    def set_password(self, name: str, password: str | None) -> None:
        """Set (or with None, remove) the password of the user ``name``; unlocks it.

        Raises:
            NotFoundError: no such principal. ConfigError: a service account, or a too short password.
        """
        info = self.get_principal(name)
        if password is not None:
            if info.kind == "service":
                raise ConfigError("a service account logs in with API keys only; give no password")
            check_password(password)
        hashed = hash_secret(password) if password is not None else None
        self._update_principal(name, password_hash=hashed, failed_logins=0, locked_until=None)

    def _update_principal(self, name: str, **values: Any) -> None:
        def work(conn: Connection) -> int:
            return conn.execute(update(principals).where(principals.c.name == name).values(**values)).rowcount

        if not self.db.run_transaction(work):
            raise NotFoundError(f"no user or service account named {name!r}; `pipeledger user list` shows them")

    # ------------------------------------------------------------------ keys

    def issue_key(self, principal: str, *, label: str | None = None, expires_at: datetime | None = None) -> IssuedKey:
        """Make an API key for the principal named ``principal``; its text is in the result only.

        Raises:
            NotFoundError: no such principal. ConfigError: ``expires_at`` is not in the future.
        """
        if expires_at is not None and expires_at <= self.clock():
            raise ConfigError("the key's expiry is in the past; give a duration such as --expires 30d")
        info = self.get_principal(principal)
        return self.db.run_transaction(lambda conn: self._insert_key(conn, info.id, info.name, label, expires_at))

    def _insert_key(
        self, conn: Connection, principal_id: str, principal: str, label: str | None, expires_at: datetime | None
    ) -> IssuedKey:
        key = new_key()
        now = self.clock()
        conn.execute(
            insert(api_keys).values(
                id=key.key_id,
                principal_id=principal_id,
                label=label,
                secret_hash=hash_secret(key.secret),
                created_at=now,
                expires_at=expires_at,
            )
        )
        info = ApiKeyInfo(id=key.key_id, principal=principal, label=label, created_at=now, expires_at=expires_at)
        return IssuedKey(key=key.text, info=info)

    def list_keys(self, principal: str | None = None, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
        """The keys of ``principal`` (every principal's with None), oldest first; revoked ones
        only with ``include_revoked``."""
        query = (
            select(api_keys, principals.c.name.label("principal"))
            .join(principals, principals.c.id == api_keys.c.principal_id)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        if principal is not None:
            query = query.where(principals.c.name == principal)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.db.read() as conn:
            return [_key_info(row) for row in conn.execute(query).mappings()]

    def get_key(self, key_id: str) -> ApiKeyInfo:
        """The key ``key_id`` (revoked or not).

        Raises:
            NotFoundError: no such key.
        """
        query = (
            select(api_keys, principals.c.name.label("principal"))
            .join(principals, principals.c.id == api_keys.c.principal_id)
            .where(api_keys.c.id == key_id)
        )
        with self.db.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFoundError(f"no API key {key_id!r}; `pipeledger api-key list` shows yours")
        return _key_info(row)

    def revoke_key(self, key_id: str) -> ApiKeyInfo:
        """Revoke the key ``key_id`` (again: no change); refused from the next request on, in
        every server process.

        Raises:
            NotFoundError: no such key.
        """
        now = self.clock()
        self.db.run_transaction(
            lambda conn: conn.execute(
                update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
            )
        )
        self.verified.forget(key_id)
        return self.get_key(key_id)

    # ------------------------------------------------------------------ authentication

    def authenticate(self, text: str) -> Principal:
        """The principal the API key ``text`` authenticates, with its roles.

        One indexed read gets the key, its principal and the principal's roles; the secret is
        checked against the stored argon2 hash, or against :attr:`verified` (the SHA-256 of a
        key text verified before by this process). The key's revocation and expiry and the
        principal's state are checked on every call.

        Raises:
            AuthenticationError: a malformed or unknown key, a wrong secret, an expired or revoked
                key, a disabled principal (one line naming the fix, never the secret).
        """
        key = parse_key(text)
        if key is None:
            raise AuthenticationError(
                "the API key is malformed (pipeledger keys read pl_<id>_<secret>); copy it again, "
                "or log in again with `pipeledger login URL`"
            )
        with self.db.session() as session:
            found = _KEY_AND_ROLES.all(session, {"b_key_id": key.key_id})
        rows = [SimpleNamespace(**row) for row in found]
        if not rows:
            raise AuthenticationError(_UNKNOWN_KEY)
        first = rows[0]
        self._check_secret(key, first.secret_hash)
        now = self.clock()
        if first.revoked_at is not None:
            raise AuthenticationError(
                f"API key {key.key_id} was revoked; log in again with a valid key (`pipeledger login URL`)"
            )
        if first.expires_at is not None and first.expires_at <= now:
            raise AuthenticationError(
                f"API key {key.key_id} expired at {first.expires_at:%Y-%m-%d %H:%M} UTC; "
                "log in again (`pipeledger login URL`) or make a new key"
            )
        if first.disabled_at is not None:
            raise AuthenticationError(
                f"{first.name!r} is disabled; ask a server administrator to enable it (`pipeledger user enable`)"
            )
        self._touch(key.key_id, first.last_used_at, now)
        roles = {row.project: Role.parse(row.role) for row in rows if row.project is not None}
        return Principal(
            name=first.name,
            kind=first.kind,
            server_admin=bool(first.server_admin),
            roles=roles,
            id=first.id,
            key_id=key.key_id,
        )

    def _check_secret(self, key: KeyText, stored_hash: str) -> None:
        if self.verified.verified(key, stored_hash):
            return
        if not verify_secret(stored_hash, key.secret):
            raise AuthenticationError(_UNKNOWN_KEY)
        self.verified.remember(key, stored_hash)

    def _touch(self, key_id: str, stored: datetime | None, now: datetime) -> None:
        """Record that the key was used, at most once per :data:`LAST_USED_RESOLUTION`."""
        last = max(filter(None, (stored, self._last_used.get(key_id))), default=None)
        if last is not None and now - last < LAST_USED_RESOLUTION:
            return
        self._last_used[key_id] = now
        self.db.run_transaction(
            lambda conn: conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))
        )

    def login(self, name: str, password: str, *, lifetime: timedelta = LOGIN_LIFETIME) -> IssuedKey:
        """A login token (an API key labelled ``login`` expiring after ``lifetime``) for the user
        ``name`` whose password is ``password``.

        A wrong user name and a wrong password get the same answer and take the same time. After
        :data:`LOCK_AFTER` failures in a row the user is locked for :data:`FIRST_LOCK`,
        doubled on each further failure (at most :data:`MAX_LOCK`); a success resets the count.

        Raises:
            AuthenticationError: wrong user name or password, a locked or disabled user.
        """
        row = self._principal_row(name)
        now = self.clock()
        if row is None or row["password_hash"] is None:
            verify_secret(dummy_hash(), password)
            raise AuthenticationError(_WRONG_CREDENTIALS)
        if row["locked_until"] is not None and row["locked_until"] > now:
            raise AuthenticationError(
                f"too many failed logins for {name!r}: try again after {row['locked_until']:%H:%M:%S} UTC, "
                "or log in with an API key"
            )
        if not verify_secret(row["password_hash"], password):
            self._failed_login(row["id"], now)
            raise AuthenticationError(_WRONG_CREDENTIALS)
        if row["disabled_at"] is not None:
            raise AuthenticationError(f"{name!r} is disabled; ask a server administrator to enable it")
        lifetime = min(lifetime, LOGIN_LIFETIME)

        def work(conn: Connection) -> IssuedKey:
            conn.execute(
                update(principals).where(principals.c.id == row["id"]).values(failed_logins=0, locked_until=None)
            )
            return self._insert_key(conn, row["id"], name, LOGIN_LABEL, now + lifetime)

        return self.db.run_transaction(work)

    def _principal_row(self, name: str) -> Any:
        """The ``principals`` row of ``name`` (with its hash and lockout state), or None."""
        with self.db.read() as conn:
            return conn.execute(select(principals).where(principals.c.name == name)).mappings().first()

    def _failed_login(self, principal_id: str, now: datetime) -> None:
        def work(conn: Connection) -> None:
            conn.execute(
                update(principals)
                .where(principals.c.id == principal_id)
                .values(failed_logins=principals.c.failed_logins + 1)
            )
            failures = conn.execute(select(principals.c.failed_logins).where(principals.c.id == principal_id)).scalar()
            if failures is not None and failures >= LOCK_AFTER:
                lock = min(FIRST_LOCK * 2 ** (failures - LOCK_AFTER), MAX_LOCK)
                conn.execute(update(principals).where(principals.c.id == principal_id).values(locked_until=now + lock))

        self.db.run_transaction(work)

    # ------------------------------------------------------------------ projects and members

    def create_project(self, name: str, description: str | None = None) -> ProjectInfo:
        """Insert the project ``name``.

        Raises:
            ConfigError: an invalid or taken name.
        """
        check_project_name(name)
        now = self.clock()
        try:
            self.db.run_transaction(
                lambda conn: conn.execute(insert(projects).values(name=name, description=description, created_at=now))
            )
        except DuplicateRowError:
            raise ConfigError(f"a project named {name!r} exists already; pick another name") from None
        return ProjectInfo(name=name, description=description, created_at=now)

    def list_projects(self, names: Collection[str] | None = None) -> list[ProjectInfo]:
        """Every project (or those of ``names`` that exist), by name."""
        query = select(projects).order_by(projects.c.name)
        if names is not None:
            query = query.where(projects.c.name.in_(list(names)))
        with self.db.read() as conn:
            return [ProjectInfo.model_validate(dict(row)) for row in conn.execute(query).mappings()]

    def get_project(self, name: str) -> ProjectInfo:
        """The project ``name``.

        Raises:
            NotFoundError: no such project.
        """
        found = self.list_projects([name])
        if not found:
            raise NotFoundError(f"no project named {name!r}; `pipeledger project list` shows them")
        return found[0]

    def set_member(self, project: str, principal: str, role: Role) -> MemberInfo:
        """Give the principal ``principal`` the role ``role`` in ``project`` (replacing its role).

        Raises:
            NotFoundError: no such project or principal.
        """
        self.get_project(project)
        info = self.get_principal(principal)

        def work(conn: Connection) -> None:
            where = (project_members.c.project == project, project_members.c.principal_id == info.id)
            conn.execute(delete(project_members).where(*where))
            conn.execute(insert(project_members).values(project=project, principal_id=info.id, role=role.label))

        self.db.run_transaction(work)
        return MemberInfo(project=project, principal=info.name, kind=info.kind, role=role.label)

    def remove_member(self, project: str, principal: str) -> None:
        """Take ``principal``'s role in ``project`` away.

        Raises:
            NotFoundError: the principal is not a member of the project.
        """
        info = self.get_principal(principal)

        def work(conn: Connection) -> int:
            where = (project_members.c.project == project, project_members.c.principal_id == info.id)
            return conn.execute(delete(project_members).where(*where)).rowcount

        if not self.db.run_transaction(work):
            raise NotFoundError(f"{principal!r} is not a member of project {project!r}")

    def list_members(self, project: str) -> list[MemberInfo]:
        """The members of ``project`` by name.

        Raises:
            NotFoundError: no such project.
        """
        self.get_project(project)
        query = (
            select(project_members.c.role, principals.c.name, principals.c.kind)
            .join(principals, principals.c.id == project_members.c.principal_id)
            .where(project_members.c.project == project)
            .order_by(principals.c.name)
        )
        with self.db.read() as conn:
            return [
                MemberInfo(project=project, principal=row.name, kind=row.kind, role=row.role)
                for row in conn.execute(query)
            ]

    def count_principals(self) -> int:
        """How many principals exist (for the server's start message)."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(principals)).scalar_one())


def _principal_info(row: Any, roles: dict[str, str]) -> PrincipalInfo:
    return PrincipalInfo(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        server_admin=bool(row["server_admin"]),
        has_password=row["password_hash"] is not None,
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        roles=roles,
    )


def _key_info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row["id"],
        principal=row["principal"],
        label=row["label"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )
