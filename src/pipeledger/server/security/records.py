"""What the identity store hands out: principals, API keys, projects and members, as plain
records (also the JSON bodies of the identity routes). None holds a secret or a hash, except
:class:`IssuedKey`, the one answer that carries a key's text, once."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class PrincipalInfo(BaseModel):
    """A user or a service account."""

    id: str
    name: str
    kind: str
    """``user`` or ``service``."""
    server_admin: bool
    has_password: bool
    created_at: datetime
    disabled_at: datetime | None = None
    roles: dict[str, str] = {}
    """Its role (``read``, ``write``, ``admin``) in each project it belongs to."""

    @property
    def disabled(self) -> bool:
        """Whether the principal is disabled (its keys and password stop working)."""
        return self.disabled_at is not None


class ApiKeyInfo(BaseModel):
    """An API key, without its secret: who holds it, when it expires, whether it was revoked."""

    id: str
    principal: str
    """The name of the principal the key authenticates."""
    label: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class IssuedKey(BaseModel):
    """A key just made: its text (``pl_<id>_<secret>``), shown this once, and its record."""

    key: str
    info: ApiKeyInfo


class ProjectInfo(BaseModel):
    """A project."""

    name: str
    description: str | None = None
    created_at: datetime


class MemberInfo(BaseModel):
    """A principal's role in a project."""

    project: str
    principal: str
    kind: str
    role: str
