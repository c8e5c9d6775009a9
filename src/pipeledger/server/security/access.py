"""What a caller may see: the projects of the objects a request names, and the checks on them.

An :class:`Access` is made per request from its :class:`Principal` and the server's store. It
finds the project(s) of every object a request touches by looking them up in the store:

* a pipeline is in its project (``PipelineRecord.project``); a run and its step runs are in
  their pipeline's project;
* an artifact is in the projects of the step runs that produced or consumed it (so an input a
  run of project B read from project A is visible to B's readers, who see it in B's runs);
* an artifact no step run touched yet (registered external data) is *unclaimed*: it is visible
  to callers with ``write`` in some project (those who may register one).

An object in no project the caller may read answers exactly as an object that does not exist:
:meth:`Access.need` raises the same :class:`NotFoundError`, with the same message, for both.
A readable object on which the caller's role is too low raises :class:`PermissionDeniedError`
naming the role held and the role needed. A server administrator passes every check without a
look-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeledger.exceptions import NotFoundError, PermissionDeniedError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import EntityKind
from pipeledger.server.security.principal import Principal, Role

#: The kinds of objects a request names.
KINDS = ("pipeline", "run", "step_run", "artifact")
UNCLAIMED: frozenset[str] = frozenset()
"""The projects of an artifact no step run produced or consumed."""


def denied(principal: Principal, role: Role, action: str, project: str | None) -> PermissionDeniedError:
    """The error of a caller whose role is below ``role`` (in ``project``, or in every project)."""
    if project is None:
        return PermissionDeniedError(
            f"{action} needs {role.label} access to a project and you have none: ask a project admin"
        )
    held = principal.role_in(project)
    have = (
        f"you have {held.label} access to project {project!r}" if held else f"you have no role in project {project!r}"
    )
    return PermissionDeniedError(f"{have}; {action} needs {role.label}: ask a project admin")


def not_found(kind: str, key: str) -> NotFoundError:
    """The error of an object that does not exist (or that the caller may not read)."""
    label = kind.replace("_", " ")
    return NotFoundError(f"no {label} with id {key!r}" if kind != "pipeline" else f"no pipeline named {key!r}")


@dataclass
class Access:
    """The checks of one request by ``principal`` on ``store`` (look-ups are remembered)."""

    principal: Principal
    store: MetadataStore
    _found: dict[tuple[str, str], frozenset[str] | None] = field(default_factory=dict)

    @property
    def admin(self) -> bool:
        """Whether the caller is a server administrator (every check passes)."""
        return self.principal.server_admin

    def readable(self) -> frozenset[str] | None:
        """The projects the caller may read (None: every one)."""
        return self.principal.projects_with(Role.READ)

    def within(self, role: Role, asked: Iterable[str] | None) -> frozenset[str] | None:
        """The projects a listing may show: those where the caller holds ``role``, narrowed to
        ``asked`` (what the client asked for) if given; None: every project."""
        allowed = self.principal.projects_with(role)
        if asked is None:
            return allowed
        wanted = frozenset(asked)
        return wanted if allowed is None else wanted & allowed

    def holds_somewhere(self, role: Role) -> bool:
        """Whether the caller holds ``role`` (or more) in at least one project."""
        allowed = self.principal.projects_with(role)
        return allowed is None or bool(allowed)

    def require_somewhere(self, role: Role, action: str) -> None:
        """Raise :class:`PermissionDeniedError` unless the caller holds ``role`` in some project."""
        if not self.holds_somewhere(role):
            raise denied(self.principal, role, action, None)

    def require_in(self, project: str, role: Role, action: str) -> None:
        """Raise :class:`PermissionDeniedError` unless the caller holds ``role`` in ``project``."""
        if not self.principal.may(role, project):
            raise denied(self.principal, role, action, project)

    # ---------------------------------------------------------------- objects

    def projects_of(self, kind: str, key: str) -> frozenset[str] | None:
        """The projects of object ``key`` of ``kind`` (see the module docstring); None if it
        does not exist."""
        cached = (kind, key)
        if cached not in self._found:
            self._found[cached] = self._look_up(kind, key)
        return self._found[cached]

    def prefetch(self, kind: str, keys: Iterable[str]) -> None:
        """Look up the projects of many objects in one call (for lists, lineage graphs)."""
        wanted = [key for key in dict.fromkeys(keys) if (kind, key) not in self._found]
        if self.admin or not wanted:
            return
        found = self.store.projects_of(kind, wanted)
        for key in wanted:
            self._found[(kind, key)] = frozenset(found[key]) if key in found else None

    def _look_up(self, kind: str, key: str) -> frozenset[str] | None:
        found = self.store.projects_of(kind, [key])
        return frozenset(found[key]) if key in found else None

    def may_read(self, kind: str, key: str) -> bool:
        """Whether the object exists and the caller may read it."""
        if self.admin:
            return True
        projects = self.projects_of(kind, key)
        if projects is None:
            return False
        if projects == UNCLAIMED:
            return self.holds_somewhere(Role.WRITE)
        return any(self.principal.may(Role.READ, p) for p in projects)

    def need(self, kind: str, key: str, role: Role, action: str) -> None:
        """Check that the caller holds ``role`` on object ``key`` of ``kind``.

        Raises:
            NotFoundError: the object does not exist or the caller may not read it (one answer).
            PermissionDeniedError: the caller may read it, but its role is below ``role``.
        """
        if self.admin:
            return
        if not self.may_read(kind, key):
            raise self.missing(kind, key)
        projects = self.projects_of(kind, key) or UNCLAIMED
        if projects == UNCLAIMED:
            self.require_somewhere(max(role, Role.WRITE), action)
            return
        if not any(self.principal.may(role, p) for p in projects):
            shown = min(p for p in projects if self.principal.may(Role.READ, p))
            raise denied(self.principal, role, action, shown)

    def need_entity(self, kind: EntityKind | str, key: str, role: Role, action: str) -> None:
        """:meth:`need` for a run, step run or artifact named by its :class:`EntityKind`."""
        self.need(EntityKind(kind).value, key, role, action)

    def missing(self, kind: str, key: str) -> NotFoundError:
        """The error for an object that is not there for the caller: the store's own message
        for runs and pipelines (listing only what the caller may read), else :func:`not_found`."""
        readable = self.readable()
        try:
            if kind == "run":
                self.store.get_run(key, projects=readable if readable is not None else None)
            elif kind == "pipeline":
                self.store.get_pipeline(key, projects=readable if readable is not None else None)
        except NotFoundError as exc:
            return exc
        return not_found(kind, key)

    def keep_readable(self, kind: str, keys: Iterable[str]) -> list[str]:
        """The ``keys`` of objects the caller may read (others are dropped as if absent)."""
        listed = list(keys)
        self.prefetch(kind, listed)
        return [key for key in listed if self.may_read(kind, key)]
