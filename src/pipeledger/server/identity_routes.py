"""The identity routes under ``/api/v1``: logging in and out, users and service accounts, API
keys, projects and their members. What the ``pipeledger login``, ``user``, ``api-key`` and
``project`` commands call (through :class:`pipeledger.metadata_store.rest.identities.IdentityClient`).

Each route checks its caller itself:

* users and projects: server administrators only (any principal lists the projects it belongs to,
  and reads itself);
* a project's members: an admin of that project (or a server administrator);
* API keys: a principal lists, makes and revokes its own keys; a server administrator anyone's.

A refusal never tells whether the object exists: a principal revoking a key that is not its own
gets the same 404 as for a key that does not exist, and a non-admin asking for a project's members
gets the same 403 whether the project exists or not. ``POST /api/v1/auth/login`` is the one route
that needs no key (it is :data:`pipeledger.server.auth.PUBLIC_ROUTES`); failed logins are limited
per user (in the store) and per client address (:class:`~.security.limits.FailureLimiter`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from pipeledger.exceptions import AccessDeniedError, AuthenticationError, ConfigError, NotFoundError
from pipeledger.models import utcnow
from pipeledger.server.auth import authorize, check_version, directory_of, principal_of
from pipeledger.server.errors import ApiError
from pipeledger.server.security import Principal, Role
from pipeledger.server.security.directory import LOGIN_LABEL, LOGIN_LIFETIME, Directory
from pipeledger.server.security.limits import FailureLimiter
from pipeledger.server.security.records import ApiKeyInfo, IssuedKey, MemberInfo, PrincipalInfo, ProjectInfo

# ---------------------------------------------------------------------------- bodies


class LoginRequest(BaseModel):
    """A user name and password, for a login token."""

    user: str = Field(max_length=255)
    password: str = Field(max_length=1024)
    lifetime_seconds: int | None = Field(
        None, gt=0, le=30 * 86400, description="How long the token lasts (at most 30 days)."
    )


class LogoutAnswer(BaseModel):
    """What ``logout`` did: the key it revoked (only login tokens are), or None."""

    revoked: str | None


class WhoAmI(BaseModel):
    """The caller: name, kind, whether it is a server administrator, its roles, and whether the
    server authenticates at all (``authentication: false``: everyone is ``anonymous``)."""

    name: str
    kind: str
    server_admin: bool
    roles: dict[str, str]
    key_id: str | None
    authentication: bool


class CreatePrincipal(BaseModel):
    """A new user (or service account, ``service: true``), optionally with a password and a first
    API key."""

    name: str = Field(max_length=255)
    service: bool = False
    server_admin: bool = False
    password: str | None = Field(None, max_length=1024)
    issue_key: bool = True
    key_expires_seconds: int | None = Field(None, gt=0, le=100 * 365 * 86400)  # within datetime's range


class CreatedPrincipal(BaseModel):
    """The principal made, and its first key (shown this once) if one was asked for."""

    principal: PrincipalInfo
    key: IssuedKey | None = None


class SetPassword(BaseModel):
    """A new password (None removes it: the user then logs in with keys only)."""

    password: str | None = Field(None, max_length=1024)


class CreateKey(BaseModel):
    """A new API key, for the caller (or, for a server administrator, for ``user``)."""

    user: str | None = Field(None, max_length=255)
    label: str | None = Field(None, max_length=255)
    expires_seconds: int | None = Field(None, gt=0, le=100 * 365 * 86400)  # within datetime's range


class CreateProject(BaseModel):
    """A new project."""

    name: str = Field(max_length=64)
    description: str | None = Field(None, max_length=10_000)


class SetRole(BaseModel):
    """A member's role in a project: ``read``, ``write`` or ``admin``."""

    role: str


# ---------------------------------------------------------------------------- checks


def _directory(request: Request) -> Directory:
    """The server's directory, once it has principals.

    Raises:
        ConfigError: the store keeps no principals (not SQL), or ``server init`` never ran.
    """
    directory = directory_of(request)
    if directory is None:
        raise ConfigError(
            "this server keeps no users (its metadata store is not a SQL database); "
            "serve a stack whose metadata store is sqlite, mysql or postgresql"
        )
    if not (directory.authentication_known or directory.authentication_required()):
        raise ConfigError("this server has no users yet: run `pipeledger server init` on the server's machine first")
    return directory


def _server_admin(principal: Principal, what: str) -> None:
    if not principal.server_admin:
        raise AccessDeniedError(f"only a server administrator may {what}; ask one")


def _project_admin(principal: Principal, project: str) -> None:
    if not principal.may(Role.ADMIN, project):
        raise AccessDeniedError(
            f"only an admin of project {project!r} may see and change its members; ask one (or a server administrator)"
        )


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


# ---------------------------------------------------------------------------- routers


def login_router(limiter: FailureLimiter | None = None) -> APIRouter:
    """``POST /auth/login``: the one route without :func:`~pipeledger.server.auth.authorize`."""
    limiter = limiter or FailureLimiter()
    router = APIRouter(prefix="/auth", tags=["identities"], dependencies=[Depends(check_version)])

    @router.post("/login", summary="Exchange a user name and password for a login token.")
    async def login(body: LoginRequest, request: Request) -> IssuedKey:
        """A login token (an API key labelled ``login``, expiring within 30 days) for the user."""
        directory = _directory(request)
        address = request.client.host if request.client else "unknown"
        wait = limiter.retry_after(address)
        if wait is not None:
            raise ApiError(
                429,
                "AuthenticationError",
                f"too many failed logins from your address; try again in {int(wait) + 1} s",
            )
        lifetime = _seconds(body.lifetime_seconds) or LOGIN_LIFETIME
        try:
            return await run_in_threadpool(directory.login, body.user, body.password, lifetime=lifetime)
        except AuthenticationError:
            limiter.failed(address)
            raise

    return router


def identity_router() -> APIRouter:
    """Every identity route except login (each goes through ``authorize``)."""
    router = APIRouter(tags=["identities"], dependencies=[Depends(authorize)])

    @router.post("/auth/logout", summary="Revoke the login token the request carries.")
    async def logout(request: Request) -> LogoutAnswer:
        """Revokes the request's key if it is a login token (an API key made with ``api-key
        create`` stays valid: revoke it with ``DELETE /keys/{id}``)."""
        directory = _directory(request)
        principal = principal_of(request)
        if principal.key_id is None:
            return LogoutAnswer(revoked=None)
        key = await run_in_threadpool(directory.get_key, principal.key_id)
        if key.label != LOGIN_LABEL:
            return LogoutAnswer(revoked=None)
        await run_in_threadpool(directory.revoke_key, principal.key_id)
        return LogoutAnswer(revoked=principal.key_id)

    @router.get("/auth/whoami", summary="Who the request's key authenticates.")
    async def whoami(request: Request) -> WhoAmI:
        """The caller's name, kind, roles; ``authentication: false`` on a server without users."""
        principal = principal_of(request)
        directory = directory_of(request)
        required = directory is not None and await run_in_threadpool(directory.authentication_required)
        return WhoAmI(
            name=principal.name,
            kind=principal.kind,
            server_admin=principal.server_admin,
            roles={project: role.label for project, role in principal.roles.items()},
            key_id=principal.key_id,
            authentication=required,
        )

    # -------------------------------------------------------------- users

    @router.get("/users", summary="Every user and service account (server administrators).")
    async def list_users(request: Request) -> list[PrincipalInfo]:
        """Every principal with its roles."""
        directory = _directory(request)
        _server_admin(principal_of(request), "list users")
        return await run_in_threadpool(directory.list_principals)

    @router.post("/users", summary="Create a user or service account (server administrators).")
    async def create_user(body: CreatePrincipal, request: Request) -> CreatedPrincipal:
        """Creates the principal and, unless ``issue_key`` is false, its first API key."""
        directory = _directory(request)
        _server_admin(principal_of(request), "create users")

        def work() -> CreatedPrincipal:
            info = directory.create_principal(
                body.name,
                kind="service" if body.service else "user",
                server_admin=body.server_admin,
                password=body.password,
            )
            key = None
            if body.issue_key:
                expiry = _seconds(body.key_expires_seconds)
                key = directory.issue_key(info.name, label="first", expires_at=utcnow() + expiry if expiry else None)
            return CreatedPrincipal(principal=info, key=key)

        return await run_in_threadpool(work)

    @router.get("/users/{name}", summary="A user or service account (itself, or server administrators).")
    async def get_user(name: str, request: Request) -> PrincipalInfo:
        """The principal ``name`` with its roles."""
        directory = _directory(request)
        principal = principal_of(request)
        if name != principal.name:
            _server_admin(principal, "read other users")
        return await run_in_threadpool(directory.get_principal, name)

    @router.post("/users/{name}/disable", summary="Disable a user: its keys stop working (server administrators).")
    async def disable_user(name: str, request: Request) -> PrincipalInfo:
        """Disables ``name`` from its next request on (a server administrator cannot disable itself)."""
        directory = _directory(request)
        principal = principal_of(request)
        _server_admin(principal, "disable users")
        if name == principal.name:
            raise ConfigError("you cannot disable yourself; ask another server administrator")
        return await run_in_threadpool(directory.set_disabled, name, True)

    @router.post("/users/{name}/enable", summary="Enable a disabled user again (server administrators).")
    async def enable_user(name: str, request: Request) -> PrincipalInfo:
        """Enables ``name`` again."""
        directory = _directory(request)
        _server_admin(principal_of(request), "enable users")
        return await run_in_threadpool(directory.set_disabled, name, False)

    @router.put("/users/{name}/password", summary="Set or remove a user's password (itself, or server administrators).")
    async def set_password(name: str, body: SetPassword, request: Request) -> PrincipalInfo:
        """Sets the password (and unlocks the user); None removes it."""
        directory = _directory(request)
        principal = principal_of(request)
        if name != principal.name:
            _server_admin(principal, "set other users' passwords")

        def work() -> PrincipalInfo:
            directory.set_password(name, body.password)
            return directory.get_principal(name)

        return await run_in_threadpool(work)

    # -------------------------------------------------------------- keys

    @router.get("/keys", summary="API keys: the caller's, or a user's (server administrators).")
    async def list_keys(
        request: Request, user: str | None = None, include_revoked: bool = False, every_user: bool = False
    ) -> list[ApiKeyInfo]:
        """The caller's keys; ``user=NAME`` or ``every_user=true`` for server administrators."""
        directory = _directory(request)
        principal = principal_of(request)
        owner: str | None = user or principal.name
        if every_user or owner != principal.name:
            _server_admin(principal, "list other users' keys")
            owner = None if every_user else owner
        return await run_in_threadpool(directory.list_keys, owner, include_revoked=include_revoked)

    @router.post("/keys", summary="Make an API key (for the caller; for anyone: server administrators).")
    async def create_key(body: CreateKey, request: Request) -> IssuedKey:
        """The new key's text is in this answer only."""
        directory = _directory(request)
        principal = principal_of(request)
        owner = body.user or principal.name
        if owner != principal.name:
            _server_admin(principal, "make keys for other users")
        expiry = _seconds(body.expires_seconds)
        return await run_in_threadpool(
            directory.issue_key, owner, label=body.label, expires_at=utcnow() + expiry if expiry else None
        )

    @router.delete("/keys/{key_id}", summary="Revoke an API key (one's own; anyone's: server administrators).")
    async def revoke_key(key_id: str, request: Request) -> ApiKeyInfo:
        """Revokes the key at once, in every server process."""
        directory = _directory(request)
        principal = principal_of(request)

        def work() -> ApiKeyInfo:
            try:
                key = directory.get_key(key_id)
            except NotFoundError:
                key = None
            if key is None or (key.principal != principal.name and not principal.server_admin):
                raise NotFoundError(f"no API key {key_id!r} among yours; `pipeledger api-key list` shows them")
            return directory.revoke_key(key_id)

        return await run_in_threadpool(work)

    # -------------------------------------------------------------- projects

    @router.get("/projects", summary="Projects: every one (server administrators), or the caller's.")
    async def list_projects(request: Request) -> list[ProjectInfo]:
        """A server administrator sees every project, anyone else those it holds a role in."""
        directory = _directory(request)
        principal = principal_of(request)
        names = principal.projects_with(Role.READ)
        return await run_in_threadpool(directory.list_projects, names)

    @router.post("/projects", summary="Create a project (server administrators).")
    async def create_project(body: CreateProject, request: Request) -> ProjectInfo:
        """Creates the project; it has no members until some are added."""
        directory = _directory(request)
        _server_admin(principal_of(request), "create projects")
        return await run_in_threadpool(directory.create_project, body.name, body.description)

    @router.get("/projects/{project}/members", summary="A project's members (its admins).")
    async def list_members(project: str, request: Request) -> list[MemberInfo]:
        """The members of ``project`` and their roles."""
        directory = _directory(request)
        _project_admin(principal_of(request), project)
        return await run_in_threadpool(directory.list_members, project)

    @router.put("/projects/{project}/members/{user}", summary="Give a user a role in a project (its admins).")
    async def set_member(project: str, user: str, body: SetRole, request: Request) -> MemberInfo:
        """Adds ``user`` to ``project`` with the role, or changes its role."""
        directory = _directory(request)
        _project_admin(principal_of(request), project)
        role = Role.parse(body.role)
        return await run_in_threadpool(directory.set_member, project, user, role)

    @router.delete("/projects/{project}/members/{user}", summary="Take a user's role in a project away (its admins).")
    async def remove_member(project: str, user: str, request: Request) -> dict[str, Any]:
        """Removes ``user`` from ``project``."""
        directory = _directory(request)
        _project_admin(principal_of(request), project)
        await run_in_threadpool(directory.remove_member, project, user)
        return {"project": project, "removed": user}

    return router
