"""Every route of the server, enumerated from the application's route table, refuses whoever it
must: no API key, an expired key, a revoked key (401 each), a user of another project (refused,
or answered without anything of the project), and a user whose role is too low (refused).

The routes come from ``app.routes`` (``fastapi.routing.iter_route_contexts`` flattens the
included routers), not from a list kept here: a route added to the application is checked
without anyone editing this file. A route added without an access rule (``x-access``) or
without ``authorize`` is reported, which :func:`test_the_checker_catches_a_route_without_the_check`
demonstrates on a fresh application: add ``@app.get("/api/v1/leak")`` to ``create_app`` and
this module's main test fails with::

    GET /api/v1/leak: declares no access rule (x-access)
    GET /api/v1/leak: answered 200 to a request without an API key (expected 401)

A route needs an example request in :func:`requests_of` to be exercised beyond its rule (a new
one fails with "no example request: add one"), so that a new route is never left unchecked.
Keys and roles are real: the server's :class:`Directory` issues them; the rules are the
policy's (:mod:`pipeledger.server.security.policy`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import update

from pipeledger.metadata_store.rest.protocol import contract_methods
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.schema import api_keys
from pipeledger.models import ArtifactCreate, RunCreate, StepRunCreate, utcnow
from pipeledger.server.app import create_app
from pipeledger.server.auth import PUBLIC_ROUTES
from pipeledger.server.security import Role
from pipeledger.server.security.directory import Directory
from pipeledger.server.security.policy import rule_of
from pipeledger.stack.registry import close_stacks, get_stack
from tests import pipelines as P

#: Routes outside the access rules: the OpenAPI document and its viewer (public, and holding
#: no record), and the login route (it authenticates by its body).
EXEMPT = frozenset({"/api/v1/openapi.json", "/api/v1/docs", "/docs/oauth2-redirect"}) | PUBLIC_ROUTES
REFUSED = (401, 403, 404)


@dataclass
class World:
    """A server on the default stack's store: project ``alpha`` holds one run of ``training``;
    ``reader`` reads alpha, ``writer`` writes there, ``outsider`` administers ``beta`` only."""

    app: FastAPI
    keys: dict[str, str]
    ids: dict[str, str]
    secrets_of_alpha: list[str] = field(default_factory=list)

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"} if who else {}


@pytest.fixture
def world(home: Path) -> Iterator[World]:
    stack = get_stack()
    store = stack.metadata_store
    assert isinstance(store, SqlMetadataStore)
    store.project = "alpha"
    run = P.training(lr=0.1)
    directory = Directory.of_store(store)
    directory.create_first_admin("root")
    for project in ("alpha", "beta"):
        directory.create_project(project)
    for name, project, role in (
        ("reader", "alpha", Role.READ),
        ("writer", "alpha", Role.WRITE),
        ("outsider", "beta", Role.ADMIN),
    ):
        directory.create_principal(name)
        directory.set_member(project, name, role)
    keys = {name: directory.issue_key(name).key for name in ("reader", "writer", "outsider")}
    expiring = directory.issue_key("writer", expires_at=utcnow() + timedelta(hours=1))
    with store.db.transaction() as conn:  # an expired key, as time would make it
        conn.execute(update(api_keys).where(api_keys.c.id == expiring.info.id).values(expires_at=utcnow()))
    keys["expired"] = expiring.key
    revoked = directory.issue_key("writer")
    directory.revoke_key(revoked.info.id)
    keys["revoked"] = revoked.key
    train = run.steps["train"]
    model = train.outputs["model"]
    path = model.uri.removeprefix("file://")
    ids = {
        "run_id": run.id,
        "run_name": run.name,
        "step_run_id": train.id,
        "artifact_id": model.id,
        "path": path,
        "pipeline": "training",
        "writer_key_id": expiring.info.id,
        "cache_key": train.cache_key or "none",
    }
    secrets = [run.id, run.name, train.id, model.id, path, '"training"', '"alpha"']
    app = create_app(lambda: store, stack.artifact_store)
    yield World(app, keys, ids, secrets)
    close_stacks()


def store_arguments(method: str, ids: dict[str, str]) -> dict[str, Any] | None:
    """Arguments naming project alpha's objects for each store method (None: unknown method)."""
    now = utcnow()
    run, step, artifact = ids["run_id"], ids["step_run_id"], ids["artifact_id"]
    created = ArtifactCreate(
        name="output", uri="/elsewhere/probe", type="data", data_type="builtins.dict",
        materializer="json", materializer_version="1", content_hash="0" * 64, size=1,
    )  # fmt: skip
    new_step = StepRunCreate(run_id=run, name="probe", inputs={"data": artifact})
    entity = {"kind": "run", "entity_id": run}
    table: dict[str, dict[str, Any]] = {
        "create_run": {"run": RunCreate(pipeline_name="training", name="probe-{n}", project="alpha")},
        "finish_run": {"run_id": run, "status": "completed", "end_time": now},
        "heartbeat": {"run_id": run, "at": now},
        "start_step": {"step": new_step},
        "finish_step": {"step_run_id": step, "status": "completed", "end_time": now},
        "finish_and_start": {"step_run_id": step, "status": "completed", "end_time": now, "next_step": new_step},
        "record_cached_step": {"step": new_step, "cached_from_id": step, "outputs": {"model": artifact}},
        "invalidate_cache": {"at": now, "pipeline": "training"},
        "list_cache_entries": {"pipeline": "training"},
        "register_artifact": {"artifact": created, "at": now},
        "put_metadata": {**entity, "values": {"k": 1}},
        "add_tags": {**entity, "tags": ["t"]},
        "remove_tags": {**entity, "tags": ["t"]},
        "change_tags": {**entity, "add": ["t"]},
        "get_tags": {"kind": "run", "entity_ids": [run]},
        "search": {"entity": "run"},
        "get_pipeline": {"name": "training"},
        "list_pipelines": {},
        "get_run": {"name_or_id": run},
        "list_runs": {},
        "list_run_names": {},
        "count_runs": {},
        "get_run_steps": {"name_or_id": run},
        "list_step_runs": {"run_id": run},
        "get_step_run": {"step_run_id": step},
        "list_step_io": {"step_run_ids": [step]},
        "find_cached_step": {"cache_key": ids["cache_key"]},
        "latest_step_run": {"pipeline": "training", "step": "train", "before": now + timedelta(days=1)},
        "lineage": {"artifact_id": artifact},
        "metric_history": {"pipeline": "training"},
        "get_artifact": {"artifact_id": artifact},
        "get_metadata": {"kind": "artifact", "entity_ids": [artifact]},
        "mark_crashed": {"heartbeat_before": now - timedelta(days=1), "at": now},
        "delete_run": {"run_id": run},
        "recorded_artifact_ids": {"ids": [artifact]},
        "iter_artifacts": {},
        "integrity_problems": {},
        "store_identity": {},
        "step_run_statuses": {"ids": [step]},
        "deletion_preview": {"run_id": run},
    }
    return table.get(method)


@dataclass(frozen=True)
class Example:
    """One request of a route: its method, URL and JSON body; ``low`` says whether ``reader``
    (read access to alpha) must be refused (from the route's rule, or stated for ``custom``
    routes whose endpoints check the caller themselves)."""

    method: str
    url: str
    body: Any = None
    content: bytes | None = None
    low: bool = False


def requests_of(name: str, path: str, rule: dict[str, Any], ids: dict[str, str]) -> Example | None:
    """The example request of the route ``name`` at ``path`` (None: no example known)."""
    role = Role.parse(rule["role"]) if rule.get("role") else None
    above_read = (role is not None and role > Role.READ) or rule["scope"] == "server"
    if path.startswith("/api/v1/store/"):
        method = path.rsplit("/", 1)[1]
        arguments = store_arguments(method, ids)
        if arguments is None:
            return None
        return Example("POST", path, content=contract_methods()[method].encode_args(arguments), low=above_read)
    file = ids["path"]
    examples = {
        "artifacts.info": Example("GET", path),
        "artifacts.upload": Example("PUT", f"{path}?path={file}.new", content=b"x", low=True),
        "artifacts.download": Example("GET", f"{path}?path={file}"),
        "artifacts.stat": Example("GET", f"{path}?path={file}"),
        "artifacts.listing": Example("GET", f"{path}?path={file.rsplit('/', 1)[0]}"),
        "artifacts.content_hash": Example("GET", f"{path}?path={file}"),
        "artifacts.move": Example("POST", path, {"source": file, "target": file + ".moved"}, low=True),
        "artifacts.remove": Example("POST", path, {"path": file, "recursive": True}, low=True),
        "artifacts.sign": Example("POST", path, {"path": file, "method": "PUT", "sha256": "0" * 64}, low=True),
        "audit.audit.list": Example("GET", path, low=True),
        "audit.audit.prune": Example("POST", path, {"older_than_days": 0}, low=True),
        "auth.logout": Example("POST", path),
        "auth.whoami": Example("GET", path),
        "users.list_users": Example("GET", path, low=True),
        "users.create_user": Example("POST", path, {"name": "mallory"}, low=True),
        "users.get_user": Example("GET", path.replace("{name}", "writer"), low=True),
        "users.disable_user": Example("POST", path.replace("{name}", "writer"), {}, low=True),
        "users.enable_user": Example("POST", path.replace("{name}", "writer"), {}, low=True),
        "users.set_password": Example(
            "PUT", path.replace("{name}", "writer"), {"password": "a long enough passphrase"}, low=True
        ),
        "keys.list_keys": Example("GET", path),
        "keys.create_key": Example("POST", path, {"user": "writer"}, low=True),
        "keys.revoke_key": Example("DELETE", path.replace("{key_id}", ids["writer_key_id"]), low=True),
        "projects.list_projects": Example("GET", path),
        "projects.create_project": Example("POST", path, {"name": "gamma"}, low=True),
        "projects.list_members": Example("GET", path.replace("{project}", "alpha"), low=True),
        "projects.set_member": Example(
            "PUT", path.replace("{project}", "alpha").replace("{user}", "reader"), {"role": "admin"}, low=True
        ),
        "projects.remove_member": Example(
            "DELETE", path.replace("{project}", "alpha").replace("{user}", "writer"), low=True
        ),
        "info.info": Example("GET", path),
    }
    group = path.removeprefix("/api/v1/").split("/", 1)[0]
    found = examples.get(f"{group}.{name}")
    if found is not None and rule["scope"] != "custom" and not found.low:
        return Example(found.method, found.url, found.body, found.content, above_read)
    return found


def send(client: TestClient, example: Example, headers: dict[str, str]) -> Any:
    if example.content is not None:
        headers = {**headers, "Content-Type": "application/json", "Content-SHA256": "0" * 64}
        return client.request(example.method, example.url, content=example.content, headers=headers)
    return client.request(example.method, example.url, json=example.body, headers=headers)


def routes(app: FastAPI) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """(method, path, name, rule) of every route of ``app``, from its route table."""
    found = []
    for route in iter_route_contexts(app.routes):
        for method in sorted((route.methods or set()) - {"HEAD"}):
            extra = getattr(route, "openapi_extra", None)
            found.append((method, str(route.path), str(route.name), rule_of(extra)))
    return found


def check_route(client: TestClient, world: World, method: str, path: str, name: str, rule: Any) -> list[str]:
    """What is wrong with one route (nothing: an empty list)."""
    where = f"{method} {path}"
    if path in EXEMPT:
        return []
    if rule is None:
        problems = [f"{where}: declares no access rule (x-access)"]
        answer = client.request(method, path)
        if answer.status_code not in REFUSED:
            problems.append(f"{where}: answered {answer.status_code} to a request without an API key (expected 401)")
        return problems
    if rule["scope"] == "public":
        return []
    if rule["scope"] == "session":
        return check_page(client, world, method, path)
    example = requests_of(name, path, rule, world.ids)
    if example is None:
        return [f"{where} ({name}): no example request: add one to requests_of in tests/test_route_access.py"]
    problems = []
    for who in (None, "expired", "revoked"):
        answer = send(client, example, world.headers(who))
        if answer.status_code != 401:
            problems.append(f"{where}: answered {answer.status_code} to {who or 'no'} key (expected 401)")
    outsider = send(client, example, world.headers("outsider"))
    if outsider.status_code < 400:
        leaked = [s for s in world.secrets_of_alpha if s in outsider.text]
        if leaked:
            problems.append(f"{where}: showed project alpha's {leaked} to a user of project beta")
    elif outsider.status_code not in REFUSED:
        problems.append(f"{where}: answered {outsider.status_code} to a user of another project")
    if example.low:
        reader = send(client, example, world.headers("reader"))
        if reader.status_code not in (403, 404):
            problems.append(f"{where}: answered {reader.status_code} to a read-only user (expected 403)")
        elif reader.status_code == 403:
            message = reader.json()["error"]["message"]
            if "\n" in message or not message:
                problems.append(f"{where}: its 403 is not one clear line: {message!r}")
    return problems


#: What each path parameter of a web UI page names, in the world's ids.
PAGE_PARAMETERS = {
    "run": "run_name",
    "run_id": "run_id",
    "step_id": "step_run_id",
    "artifact_id": "artifact_id",
    "name": "pipeline",
}


def check_page(client: TestClient, world: World, method: str, path: str) -> list[str]:
    """A web UI page (scope ``session``): without a session, with an expired or a revoked one,
    the browser is sent to sign in; a user of another project's session sees nothing of alpha."""
    where = f"{method} {path}"
    url = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: world.ids.get(PAGE_PARAMETERS.get(m.group(1), ""), "dot"), path)
    problems = []
    for who in (None, "expired", "revoked"):
        client.cookies.clear()
        if who is not None:
            client.cookies.set("pipeledger_session", world.keys[who])
        answer = client.request(method, url, follow_redirects=False)
        if answer.status_code != 303 or not answer.headers.get("location", "").startswith("/ui/login?next="):
            problems.append(
                f"{where}: answered {answer.status_code} to {who or 'no'} session (expected 303 to sign in)"
            )
    client.cookies.clear()
    client.cookies.set("pipeledger_session", world.keys["outsider"])
    outsider = client.request(method, url, follow_redirects=False)
    client.cookies.clear()
    if outsider.status_code < 400:
        # ids, names and paths as they are; bare words (JSON strings in the API's secrets) as
        # the text of an element (the runs page's filter placeholder names 'training' itself)
        shown = [s if not s.startswith('"') else f">{s.strip(chr(34))}<" for s in world.secrets_of_alpha]
        leaked = [s for s in shown if s in outsider.text]
        if leaked:
            problems.append(f"{where}: showed project alpha's {leaked} to a user of project beta")
    elif outsider.status_code not in REFUSED:
        problems.append(f"{where}: answered {outsider.status_code} to a user of another project")
    return problems


def test_every_route_refuses_whom_it_must(world: World) -> None:
    with TestClient(world.app, base_url="http://localhost") as client:
        table = routes(world.app)
        assert len(table) > len(contract_methods())  # really the whole route table
        problems = [p for route in table for p in check_route(client, world, *route)]
        assert not problems, "\n".join(problems)
        # the run is still there: no refused request changed it
        answer = client.post(
            "/api/v1/store/get_run", json={"name_or_id": world.ids["run_id"]}, headers=world.headers("reader")
        )
        assert answer.status_code == 200 and json.loads(answer.text)["id"] == world.ids["run_id"]


def test_the_checker_catches_a_route_without_the_check(world: World) -> None:
    """A route added to a fresh application without ``authorize`` and without a rule is flagged
    twice; one added inside the API router without a rule is refused by the policy (fail closed)
    and still flagged for its missing rule."""
    from fastapi import APIRouter, Depends

    from pipeledger.server.auth import authorize
    from pipeledger.server.security.policy import require_rule

    async def leak() -> dict[str, str]:
        return {"run": world.ids["run_name"]}

    world.app.add_api_route("/api/v1/leak", leak, methods=["GET"], name="leak")
    inside = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize), Depends(require_rule)])
    inside.add_api_route("/leak2", leak, methods=["GET"], name="leak2")
    world.app.include_router(inside)
    with TestClient(world.app, base_url="http://localhost") as client:
        flagged = {
            path: check_route(client, world, method, path, name, rule)
            for method, path, name, rule in routes(world.app)
            if path in ("/api/v1/leak", "/api/v1/leak2")
        }
        assert client.get("/api/v1/leak2", headers=world.headers("writer")).status_code == 403
    assert flagged["/api/v1/leak"] == [
        "GET /api/v1/leak: declares no access rule (x-access)",
        "GET /api/v1/leak: answered 200 to a request without an API key (expected 401)",
    ]
    assert flagged["/api/v1/leak2"] == ["GET /api/v1/leak2: declares no access rule (x-access)"]
