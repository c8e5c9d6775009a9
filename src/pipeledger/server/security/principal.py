"""Who a request comes from, and what roles it holds.

A :class:`Principal` is made once per request by authentication
(:func:`pipeledger.server.auth.authorize`) and is all that authorization
(:mod:`pipeledger.server.security.policy`) and the audit log look at. Roles are per project and
ordered: ``read`` < ``write`` < ``admin``; a server administrator holds ``admin`` in every
project, existing or not. A principal without a role in a project has no access to it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Role(enum.IntEnum):
    """A role in a project; a higher role includes the lower ones."""

    READ = 1
    """See the project's pipelines, runs, steps, artifacts, metadata and lineage."""
    WRITE = 2
    """Also run pipelines, log metadata, tag."""
    ADMIN = 3
    """Also delete runs, collect garbage, manage the project's members."""

    @property
    def label(self) -> str:
        """The role's name as users write it (``read``, ``write``, ``admin``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named ``text`` (any case).

        Raises:
            ValueError: not a role; the message lists the roles.
        """
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r}: use one of read, write, admin") from None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, a service account, or ``anonymous`` on a server that
    runs without authentication (loopback only, or ``--insecure-no-auth``), who then acts as a
    server administrator."""

    name: str
    kind: str
    """``user``, ``service`` or ``anonymous``."""
    server_admin: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)
    """The principal's role in each project it belongs to."""
    id: str | None = None
    """The principal's id in the store (None for ``anonymous``)."""
    key_id: str | None = None
    """The public id of the API key the request carried (None for ``anonymous``)."""

    def role_in(self, project: str) -> Role | None:
        """The principal's role in ``project`` (``admin`` for a server administrator), or None."""
        return Role.ADMIN if self.server_admin else self.roles.get(project)

    def may(self, role: Role, project: str) -> bool:
        """Whether the principal holds ``role`` (or a higher one) in ``project``."""
        held = self.role_in(project)
        return held is not None and held >= role

    def projects_with(self, role: Role) -> frozenset[str] | None:
        """The projects in which the principal holds ``role`` or more; None means every project
        (a server administrator)."""
        if self.server_admin:
            return None
        return frozenset(project for project, held in self.roles.items() if held >= role)


ANONYMOUS = Principal(name="anonymous", kind="anonymous", server_admin=True)
"""The caller of a server that has no principals (``pipeledger server init`` never ran): it may
listen only on loopback (or with ``--insecure-no-auth``), and every caller acts as administrator."""
