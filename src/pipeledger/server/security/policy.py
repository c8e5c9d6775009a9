"""Every route's authorization rule (see ``docs/server.md``, "Projects and roles").

A rule says which role a route needs and where: ``objects`` (on the project of every object the
request names, found by :class:`~.access.Access`), ``listing`` (results restricted to the
projects where the caller holds the role: the store method's ``projects`` argument becomes
those, narrowed to what the client asked), ``any`` (the role in at least one project),
``server`` (a server administrator), ``authenticated`` (any caller authentication let in:
versions, ``/api/v1/info``), ``public`` (no check: ``/health``), ``custom`` (the
route's endpoint checks itself, e.g. the identity routes, which know their own rules) or
``session`` (a web UI page: a signed-in user's session, every read through
:class:`~.guarded.GuardedStore`, i.e. these same rules; see :mod:`pipeledger.server.ui_access`).

Each route carries its rule in its OpenAPI operation (``x-access``: role, scope, action), so
the OpenAPI document shows it and :func:`require_rule`, a dependency of every ``/api/v1``
route, refuses a route without one (fail closed). :data:`STORE_RULES` holds the rule of each
metadata-store method; :func:`guard` applies it to a request's arguments before the method runs
and returns what filters its result.

Objects a caller cannot read answer exactly as objects that do not exist; a role too low on a
readable project answers 403 naming the role held and the one needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from fastapi import Request

from pipeledger.exceptions import ConflictError, NotFoundError
from pipeledger.models import (
    ArtifactRecord,
    LineageRecord,
    LineageStep,
    RunCreate,
    StepRunCreate,
)
from pipeledger.server.errors import ApiError
from pipeledger.server.security.access import Access, denied
from pipeledger.server.security.principal import Principal, Role

#: The key of a route's rule in its OpenAPI operation.
RULE_KEY = "x-access"
SCOPES = ("objects", "listing", "any", "server", "authenticated", "public", "custom", "session")

After = Callable[[Any], Any]
Check = Callable[[Access, dict[str, Any]], "After | Answer | None"]


@dataclass(frozen=True)
class Answer:
    """The response of a request answered without calling the store (an object the caller may
    not see, for a method that answers absence with a value rather than an error)."""

    value: Any


@dataclass(frozen=True)
class Rule:
    """Who may call a route: ``role`` at ``scope`` (see the module docstring); ``action`` words
    what the route does in error messages ("tagging", "deleting runs"); ``check`` applies it to
    a store method's arguments (``objects`` and ``listing`` rules)."""

    role: Role | None
    scope: str
    action: str
    check: Check | None = None

    def operation(self) -> dict[str, Any]:
        """The rule as the OpenAPI operation carries it (``{"x-access": {...}}``)."""
        role = None if self.role is None else self.role.label
        return {RULE_KEY: {"role": role, "scope": self.scope, "action": self.action}}


def public(action: str) -> Rule:
    """The rule of a route anyone may call (``/health``)."""
    return Rule(None, "public", action)


def authenticated(action: str) -> Rule:
    """The rule of a route any authenticated caller may call (versions, the server's info)."""
    return Rule(None, "authenticated", action)


def custom(action: str, role: Role | None = None) -> Rule:
    """The rule of a route whose endpoint checks the caller itself (identity routes)."""
    return Rule(role, "custom", action)


def session(action: str) -> Rule:
    """The rule of a web UI page: a session of a signed-in user, who reads what the API's rules
    let it read (:class:`~.guarded.GuardedStore`)."""
    return Rule(Role.READ, "session", action)


def rule_of(operation: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``x-access`` rule of a route's OpenAPI operation (``route.openapi_extra``), or None."""
    found = (operation or {}).get(RULE_KEY)
    return found if isinstance(found, dict) and found.get("scope") in SCOPES else None


async def require_rule(request: Request) -> None:
    """Refuse a route that declares no rule (a route added without one), and check the rules
    that need no arguments: ``any`` (the role in some project) and ``server`` (an administrator).
    Runs after :func:`~pipeledger.server.auth.authorize` (it reads the caller it left).

    Raises:
        ApiError: (403) no rule, or the caller lacks the role.
    """
    from pipeledger.server.auth import principal_of

    route = request.scope.get("route") or _route_of_endpoint(request)
    rule = rule_of(getattr(route, "openapi_extra", None))
    if rule is None:
        name = getattr(route, "name", request.url.path)
        raise ApiError(403, "PermissionDeniedError", f"route {name!r} declares no access rule: refused (a server bug)")
    principal = principal_of(request)
    role = Role.parse(rule["role"]) if rule.get("role") else Role.READ
    if rule["scope"] == "server" and not principal.server_admin:
        action = rule["action"]
        raise ApiError(403, "PermissionDeniedError", f"{action} needs a server administrator")
    if rule["scope"] in ("any", "listing") and principal.projects_with(role) == frozenset():
        raise ApiError(403, "PermissionDeniedError", str(denied(principal, role, rule["action"], None)))


def _route_of_endpoint(request: Request) -> Any:
    """The matched route, for servers whose Starlette does not put it in the scope: the flat
    route whose endpoint the request reached (None: no rule can be found, the route is refused)."""
    endpoint = request.scope.get("endpoint")
    for route in request.app.routes:
        if endpoint is not None and getattr(route, "endpoint", None) is endpoint:
            return route
    return None


def guard(method: str, principal: Principal, access: Access, arguments: dict[str, Any]) -> After | Answer | None:
    """Apply the rule of store method ``method`` to ``arguments`` (changed in place: listings get
    their ``projects``, id lists lose ids the caller may not read); returns what filters the
    result, an :class:`Answer` standing for it, or None.

    Raises:
        NotFoundError: an object named is not there for the caller.
        PermissionDeniedError: the caller's role is too low.
        KeyError: ``method`` has no rule (the server refuses it).
    """
    rule = STORE_RULES[method]
    if rule.scope == "server" and not principal.server_admin:
        raise ApiError(403, "PermissionDeniedError", f"{rule.action} needs a server administrator")
    if rule.scope in ("any", "listing") and rule.role is not None:
        access.require_somewhere(rule.role, rule.action)
    if rule.scope == "listing" and "projects" in arguments and not principal.server_admin:
        assert rule.role is not None
        arguments["projects"] = sorted(access.within(rule.role, arguments.get("projects")) or ())
    if rule.check is None or principal.server_admin:
        return None
    return rule.check(access, arguments)


# ------------------------------------------------------------------ checks


def _on(kind: str, argument: str, role: Role, action: str) -> Check:
    """``role`` on the object of ``kind`` named by ``arguments[argument]``."""

    def check(access: Access, arguments: dict[str, Any]) -> None:
        access.need(kind, arguments[argument], role, action)

    return check


def _on_entity(role: Role, action: str) -> Check:
    def check(access: Access, arguments: dict[str, Any]) -> None:
        access.need_entity(arguments["kind"], arguments["entity_id"], role, action)

    return check


def _readable_ids(kind: str | None, argument: str) -> Check:
    """Drop the ids the caller may not read from ``arguments[argument]`` (absent ones are
    answered as absent by the store: the same)."""

    def check(access: Access, arguments: dict[str, Any]) -> None:
        of = kind or _entity(arguments["kind"])
        arguments[argument] = access.keep_readable(of, arguments[argument])

    return check


def _entity(kind: Any) -> str:
    from pipeledger.models import EntityKind

    return EntityKind(kind).value


def _create_run(access: Access, arguments: dict[str, Any]) -> None:
    run: RunCreate = arguments["run"]
    try:
        held = access.store.get_pipeline(run.pipeline_name).project
    except NotFoundError:
        held = None
    if held is not None and held != run.project and not access.principal.may(Role.READ, held):
        raise ConflictError(
            f"pipeline name {run.pipeline_name!r} is taken in a project you cannot read: "
            "give your pipeline another name"
        )
    access.require_in(run.project, Role.WRITE, "recording runs")


def _start_step(access: Access, arguments: dict[str, Any]) -> None:
    step: StepRunCreate = arguments["step"]
    access.need("run", step.run_id, Role.WRITE, "recording steps")
    for artifact_id in step.inputs.values():
        access.need("artifact", artifact_id, Role.READ, "reading an input")


def _finish_and_start(access: Access, arguments: dict[str, Any]) -> None:
    access.need("step_run", arguments["step_run_id"], Role.WRITE, "recording steps")
    step: StepRunCreate = arguments["next_step"]
    access.need("run", step.run_id, Role.WRITE, "recording steps")
    created = {output.id for output in arguments.get("outputs") or ()}
    for artifact_id in step.inputs.values():
        if artifact_id not in created:  # the outputs finished in the same call are the caller's own
            access.need("artifact", artifact_id, Role.READ, "reading an input")


def _record_cached_step(access: Access, arguments: dict[str, Any]) -> None:
    _start_step(access, arguments)
    access.need("step_run", arguments["cached_from_id"], Role.READ, "reusing a cached step")
    for artifact_id in arguments["outputs"].values():
        access.need("artifact", artifact_id, Role.READ, "reusing a cached output")


def _absent_unless_readable(kind: str, argument: str, absent: Any) -> Check:
    """Answer ``absent`` (what the store answers for an unknown object) for one the caller may not read."""

    def check(access: Access, arguments: dict[str, Any]) -> Answer | None:
        return None if access.may_read(kind, arguments[argument]) else Answer(absent)

    return check


def _invalidate_cache(access: Access, arguments: dict[str, Any]) -> None:
    if arguments.get("pipeline") is not None:
        access.need("pipeline", arguments["pipeline"], Role.ADMIN, "invalidating caches")


def _lineage(access: Access, arguments: dict[str, Any]) -> After:
    if arguments.get("artifact_id") is not None:
        access.need("artifact", arguments["artifact_id"], Role.READ, "reading lineage")
    else:
        access.need("step_run", arguments["step_run_id"], Role.READ, "reading lineage")
    return lambda graph: hide_lineage(access, graph)


def _readable_runs(access: Access, arguments: dict[str, Any]) -> After:
    return lambda ids: access.keep_readable("run", ids)


def _search(access: Access, arguments: dict[str, Any]) -> Answer | None:
    """A search walking lineage from an artifact the caller cannot read finds nothing (its
    results would tell that the artifact exists and what it touches)."""
    from pipeledger.models import SearchPage
    from pipeledger.search import parse_filter
    from pipeledger.search.ast import And, Lineage, Node, Not, Or

    def starts(node: Node | None) -> list[str]:
        if isinstance(node, Lineage):
            return [node.artifact_id]
        if isinstance(node, (And, Or)):
            return [found for item in node.items for found in starts(item)]
        if isinstance(node, Not):
            return starts(node.item)
        return []

    node = parse_filter(arguments.get("filter"), arguments["entity"])  # a bad filter: the store's error
    if all(access.may_read("artifact", artifact_id) for artifact_id in starts(node)):
        return None
    return Answer(SearchPage([], None))


def _deletion_preview(access: Access, arguments: dict[str, Any]) -> None:
    access.need("run", arguments["run_id"], Role.ADMIN, "deleting runs")
    kept = []
    for run_id in arguments["also_deleted"]:
        if access.may_read("run", run_id) and any(
            access.principal.may(Role.ADMIN, p) for p in access.projects_of("run", run_id) or ()
        ):
            kept.append(run_id)
    arguments["also_deleted"] = kept


# ----------------------------------------------------------------- lineage

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
HIDDEN = "hidden"


def hide_lineage(access: Access, graph: LineageRecord) -> LineageRecord:
    """``graph`` with every step run and artifact the caller may not read replaced by a
    placeholder that keeps only its id (and a step's status): no name, uri, run, pipeline or
    metadata; their ids are listed in ``hidden``. An artifact is readable when a readable step
    of the graph used it (it is then in that step's project) or else by its own projects."""
    steps: dict[str, LineageStep] = {}
    hidden: list[str] = []
    access.prefetch("run", [step.run_id for step in graph.steps.values()])
    access.prefetch("artifact", list(graph.artifacts))
    for step_id, step in graph.steps.items():
        if access.may_read("run", step.run_id):
            steps[step_id] = step
        else:
            hidden.append(step_id)
            steps[step_id] = LineageStep(
                id=step_id, name=HIDDEN, status=step.status, run_id="", run_name="", pipeline_name="", start_time=EPOCH
            )
    touched = {edge.artifact_id for edge in graph.edges if edge.step_run_id not in hidden}
    artifacts: dict[str, ArtifactRecord] = {}
    for artifact_id, artifact in graph.artifacts.items():
        if artifact_id in touched or access.may_read("artifact", artifact_id):
            artifacts[artifact_id] = artifact
        else:
            hidden.append(artifact_id)
            artifacts[artifact_id] = ArtifactRecord(
                id=artifact_id,
                uri="",
                type=HIDDEN,
                data_type="",
                materializer="",
                materializer_version="",
                content_hash="",
                size=0,
                producer_step_run_id=None,
                created_at=EPOCH,
            )
    secret = set(hidden)
    edges = [
        edge if edge.step_run_id not in secret and edge.artifact_id not in secret else replace(edge, name="")
        for edge in graph.edges
    ]
    producers = {
        artifact_id: produced
        for artifact_id, produced in graph.producers.items()
        if artifact_id not in secret and not _hidden_producer(graph, artifact_id, secret)
    }
    return LineageRecord(artifacts, steps, edges, producers, sorted(secret))


def _hidden_producer(graph: LineageRecord, artifact_id: str, secret: set[str]) -> bool:
    producer = graph.artifacts[artifact_id].producer_step_run_id if artifact_id in graph.artifacts else None
    return producer is not None and producer in secret


# ------------------------------------------------------------------- rules

R, W, A = Role.READ, Role.WRITE, Role.ADMIN

STORE_RULES: dict[str, Rule] = {
    # writes
    "create_run": Rule(W, "objects", "recording runs", _create_run),
    "finish_run": Rule(W, "objects", "recording runs", _on("run", "run_id", W, "recording runs")),
    "heartbeat": Rule(W, "objects", "recording runs", _on("run", "run_id", W, "recording runs")),
    "start_step": Rule(W, "objects", "recording steps", _start_step),
    "finish_step": Rule(W, "objects", "recording steps", _on("step_run", "step_run_id", W, "recording steps")),
    "finish_and_start": Rule(W, "objects", "recording steps", _finish_and_start),
    "record_cached_step": Rule(W, "objects", "recording steps", _record_cached_step),
    "invalidate_cache": Rule(A, "listing", "invalidating caches", _invalidate_cache),
    "list_cache_entries": Rule(R, "listing", "reading caches"),
    "register_artifact": Rule(W, "any", "registering artifacts"),
    "put_metadata": Rule(W, "objects", "logging metadata", _on_entity(W, "logging metadata")),
    "add_tags": Rule(W, "objects", "tagging", _on_entity(W, "tagging")),
    "remove_tags": Rule(W, "objects", "tagging", _on_entity(W, "tagging")),
    "change_tags": Rule(W, "objects", "tagging", _on_entity(W, "tagging")),
    # reads
    "get_tags": Rule(R, "objects", "reading tags", _readable_ids(None, "entity_ids")),
    "search": Rule(R, "listing", "searching", _search),
    "get_pipeline": Rule(R, "listing", "reading pipelines"),
    "list_pipelines": Rule(R, "listing", "reading pipelines"),
    "get_run": Rule(R, "listing", "reading runs"),
    "list_runs": Rule(R, "listing", "reading runs"),
    "list_run_names": Rule(R, "listing", "reading runs"),
    "count_runs": Rule(R, "listing", "reading runs"),
    "get_run_steps": Rule(R, "listing", "reading runs"),
    "list_step_runs": Rule(R, "objects", "reading runs", _absent_unless_readable("run", "run_id", [])),
    "get_step_run": Rule(R, "objects", "reading steps", _on("step_run", "step_run_id", R, "reading steps")),
    "list_step_io": Rule(R, "objects", "reading steps", _readable_ids("step_run", "step_run_ids")),
    "find_cached_step": Rule(R, "listing", "reading caches"),
    "latest_step_run": Rule(R, "listing", "reading steps"),
    "lineage": Rule(R, "objects", "reading lineage", _lineage),
    "metric_history": Rule(R, "listing", "reading metrics"),
    "get_artifact": Rule(R, "objects", "reading artifacts", _on("artifact", "artifact_id", R, "reading artifacts")),
    "get_metadata": Rule(R, "objects", "reading metadata", _readable_ids(None, "entity_ids")),
    "step_run_statuses": Rule(R, "objects", "reading steps", _readable_ids("step_run", "ids")),
    "recorded_artifact_ids": Rule(R, "objects", "reading artifacts", _readable_ids("artifact", "ids")),
    "iter_artifacts": Rule(R, "listing", "reading artifacts"),
    # maintenance
    "mark_crashed": Rule(A, "any", "marking crashed runs", _readable_runs),
    "delete_run": Rule(A, "objects", "deleting runs", _on("run", "run_id", A, "deleting runs")),
    "deletion_preview": Rule(A, "objects", "deleting runs", _deletion_preview),
    "integrity_problems": Rule(None, "server", "checking the store's integrity"),
    "store_identity": Rule(W, "any", "reading the store's ownership token"),
}
"""The rule of every metadata-store method routed by the server (a method without one is refused)."""
