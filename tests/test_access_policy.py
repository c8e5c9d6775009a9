"""Authorization on ``pipeledger server``: every route's rule, per project and role.

The server runs in process (FastAPI's client) on a real SQLite store; the caller is chosen per
request by a test header standing in for authentication (real API keys: the identity tests).
Two projects: ``ml`` (pipeline ``train``) and ``etl`` (pipeline ``load``); an ``ml`` step reads an
``etl`` artifact, so lineage crosses projects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from pipeledger.artifacts.store import OWNER_FILE, ArtifactStore
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
from pipeledger.metadata_store.rest.protocol import contract_methods
from pipeledger.models import EntityKind, RunCreate, Status, StepRunCreate, new_id
from pipeledger.server.app import create_app
from pipeledger.server.auth import PUBLIC_ROUTES, authorize
from pipeledger.server.errors import install_handlers
from pipeledger.server.security import Principal, Role
from pipeledger.server.security.policy import STORE_RULES, require_rule, rule_of
from pipeledger.testing.helpers import artifact, at, finish

CALLER = "X-Test-Caller"
KEY = "e" * 64
R, W, A = Role.READ, Role.WRITE, Role.ADMIN

CALLERS: dict[str, Principal] = {
    "admin": Principal("admin", "user", server_admin=True),
    "none": Principal("nobody", "user"),
    "other": Principal("other", "user", roles={"etl": A}),
    "reader": Principal("reader", "user", roles={"ml": R}),
    "writer": Principal("writer", "user", roles={"ml": W}),
    "owner": Principal("owner", "user", roles={"ml": A}),
}


@dataclass
class World:
    """The server, its stores, and the records of both projects."""

    app: FastAPI
    client: TestClient
    store: MetadataStore
    files: ArtifactStore
    ids: dict[str, str]

    def call(self, caller: str, method: str, **arguments: Any) -> Any:
        body = contract_methods()[method].encode_args(arguments)
        return self.client.post(f"/api/v1/store/{method}", content=body, headers={CALLER: caller})


def seed(store: MetadataStore, root: str) -> dict[str, str]:
    """Records of both projects: ``etl`` makes ``source`` then ``clean``; ``ml`` trains on
    ``clean`` (crossing projects) and makes ``model`` (with a cache key)."""
    ids: dict[str, str] = {}
    etl = store.create_run(RunCreate(pipeline_name="load", name="load-{n}", project="etl", start_time=at(0)))
    make = store.start_step(StepRunCreate(run_id=etl.id, name="extract", start_time=at(1)))
    (source,) = finish(store, make, [artifact("source", uri=f"{root}/stores/s/load/x/source")], end_time=at(2))
    clean_step = store.start_step(StepRunCreate(run_id=etl.id, name="clean", inputs={"source": source.id}))
    (clean,) = finish(store, clean_step, [artifact("clean", uri=f"{root}/stores/s/load/x/clean")], end_time=at(3))
    ml = store.create_run(RunCreate(pipeline_name="train", name="train-{n}", project="ml", start_time=at(5)))
    train = store.start_step(
        StepRunCreate(run_id=ml.id, name="train", cache_key=KEY, inputs={"data": clean.id}, start_time=at(6))
    )
    (model,) = finish(
        store, train, [artifact("model", uri=f"{root}/stores/s/train/x/model")], end_time=at(7), metadata={"acc": 0.9}
    )
    store.add_tags(EntityKind.RUN, ml.id, ["best"])
    store.add_tags(EntityKind.RUN, etl.id, ["secret-tag"])
    # the same cache key in etl, newer: a cache look-up from ml must never return it
    cached_etl = store.start_step(StepRunCreate(run_id=etl.id, name="train", cache_key=KEY, start_time=at(8)))
    finish(store, cached_etl, [artifact("etl-model", uri=f"{root}/stores/s/load/x/m")], end_time=at(9))
    ids.update(
        etl_run=etl.id,
        ml_run=ml.id,
        ml_step=train.id,
        etl_step=clean_step.id,
        etl_first=make.id,
        source=source.id,
        clean=clean.id,
        model=model.id,
    )
    return ids


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    config = SqliteMetadataStoreConfig(path=str(tmp_path / "store.db"))
    files = ArtifactStore(str(tmp_path / "artifacts"), register=False)
    app = create_app(lambda: open_sqlite_store(config), files)

    async def caller_of(request: Request) -> Principal:
        principal = CALLERS[request.headers.get(CALLER, "none")]
        request.state.principal = principal
        return principal

    app.dependency_overrides[authorize] = caller_of
    with TestClient(app, base_url="http://localhost") as client:
        store: MetadataStore = app.state.store
        yield World(app, client, store, files, seed(store, files.root))


# ------------------------------------------------------------ every route


def api_routes(app: FastAPI) -> list[Any]:
    """Every API route of ``app`` with its effective path and dependencies (FastAPI >= 0.160
    includes routers lazily: their routes are reached through route contexts)."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined]
    except ImportError:  # older FastAPI: the routes are flat
        routes: list[Any] = [r for r in app.routes if isinstance(r, APIRoute)]
    else:
        routes = list(iter_route_contexts(app.routes))
    return [r for r in routes if getattr(r, "dependant", None) is not None and str(r.path).startswith("/api/v1/")]


def test_every_api_route_declares_a_rule_and_goes_through_the_check(world: World) -> None:
    """Enumerated from the app's route table: a route added without a rule fails here."""
    routes = api_routes(world.app)
    assert len(routes) >= len(contract_methods()) + 9
    for route in routes:
        assert rule_of(route.openapi_extra) is not None, f"{route.path} declares no access rule"
        if route.path in PUBLIC_ROUTES:  # login: public, authenticated by its body
            assert rule_of(route.openapi_extra)["scope"] == "public"
            continue
        checks = {d.call for d in route.dependant.dependencies}
        assert {authorize, require_rule} <= checks, f"{route.path} skips the caller or rule check"
    assert set(STORE_RULES) == set(contract_methods())
    document = world.client.get("/api/v1/openapi.json").json()
    assert document["paths"]["/api/v1/store/delete_run"]["post"]["x-access"]["role"] == "admin"


def test_a_route_without_a_rule_is_refused() -> None:
    """Fail closed: the rule check refuses a route that declares none (as a route added later)."""
    app = FastAPI()
    install_handlers(app)

    async def anyone(request: Request) -> Principal:
        request.state.principal = CALLERS["admin"]
        return CALLERS["admin"]

    router = APIRouter(dependencies=[Depends(anyone), Depends(require_rule)])

    @router.get("/sneaky")
    async def sneaky() -> dict[str, str]:
        return {"secret": "yes"}

    app.include_router(router)
    answer = TestClient(app, base_url="http://localhost").get("/sneaky")
    assert answer.status_code == 403 and "declares no access rule" in answer.json()["error"]["message"]


#: Each store method called on objects of project ``ml`` (fresh arguments per call), and the same
#: call on objects that do not exist: (arguments on ml's objects, arguments on absent ones).
Calls = Callable[[World], dict[str, Any]]


def _step(world: World) -> StepRunCreate:
    return StepRunCreate(run_id=world.ids["ml_run"], name=f"s{new_id()}", inputs={"data": world.ids["clean"]})


CASES: dict[str, tuple[Calls, Calls | None]] = {
    "create_run": (lambda w: {"run": RunCreate(pipeline_name="train", name="train-{n}", project="ml")}, None),
    "finish_run": (
        lambda w: {"run_id": w.ids["ml_run"], "status": Status.COMPLETED, "end_time": at(20)},
        lambda w: {"run_id": "f" * 32, "status": Status.COMPLETED, "end_time": at(20)},
    ),
    "heartbeat": (lambda w: {"run_id": w.ids["ml_run"], "at": at(20)}, lambda w: {"run_id": "f" * 32, "at": at(20)}),
    "start_step": (lambda w: {"step": _step(w)}, None),
    "finish_step": (
        lambda w: {"step_run_id": w.ids["ml_step"], "status": Status.COMPLETED, "end_time": at(20), "outputs": []},
        lambda w: {"step_run_id": "f" * 32, "status": Status.COMPLETED, "end_time": at(20), "outputs": []},
    ),
    "finish_and_start": (
        lambda w: {
            "step_run_id": w.ids["ml_step"],
            "status": Status.COMPLETED,
            "end_time": at(20),
            "next_step": _step(w),
        },
        lambda w: {"step_run_id": "f" * 32, "status": Status.COMPLETED, "end_time": at(20), "next_step": _step(w)},
    ),
    "record_cached_step": (
        lambda w: {"step": _step(w), "cached_from_id": w.ids["ml_step"], "outputs": {"model": w.ids["model"]}},
        None,
    ),
    "invalidate_cache": (lambda w: {"at": at(30), "pipeline": "train"}, lambda w: {"at": at(30), "pipeline": "nope"}),
    "list_cache_entries": (lambda w: {}, None),
    "register_artifact": (lambda w: {"artifact": artifact("ext"), "at": at(1)}, None),
    "put_metadata": (
        lambda w: {"kind": EntityKind.RUN, "entity_id": w.ids["ml_run"], "values": {"k": 1}},
        lambda w: {"kind": EntityKind.RUN, "entity_id": "f" * 32, "values": {"k": 1}},
    ),
    "add_tags": (
        lambda w: {"kind": EntityKind.ARTIFACT, "entity_id": w.ids["model"], "tags": ["t"]},
        lambda w: {"kind": EntityKind.ARTIFACT, "entity_id": "f" * 32, "tags": ["t"]},
    ),
    "remove_tags": (
        lambda w: {"kind": EntityKind.RUN, "entity_id": w.ids["ml_run"], "tags": ["x"]},
        lambda w: {"kind": EntityKind.RUN, "entity_id": "f" * 32, "tags": ["x"]},
    ),
    "change_tags": (
        lambda w: {"kind": EntityKind.STEP_RUN, "entity_id": w.ids["ml_step"], "add": ["t"], "remove": []},
        lambda w: {"kind": EntityKind.STEP_RUN, "entity_id": "f" * 32, "add": ["t"], "remove": []},
    ),
    "get_tags": (lambda w: {"kind": EntityKind.RUN, "entity_ids": [w.ids["ml_run"]]}, None),
    "search": (lambda w: {"entity": "run"}, None),
    "get_pipeline": (lambda w: {"name": "train"}, lambda w: {"name": "nope"}),
    "list_pipelines": (lambda w: {}, None),
    "get_run": (lambda w: {"name_or_id": w.ids["ml_run"]}, lambda w: {"name_or_id": "f" * 32}),
    "list_runs": (lambda w: {}, None),
    "list_run_names": (lambda w: {}, None),
    "count_runs": (lambda w: {}, None),
    "get_run_steps": (lambda w: {"name_or_id": w.ids["ml_run"]}, lambda w: {"name_or_id": "f" * 32}),
    "list_step_runs": (lambda w: {"run_id": w.ids["ml_run"]}, lambda w: {"run_id": "f" * 32}),
    "get_step_run": (lambda w: {"step_run_id": w.ids["ml_step"]}, lambda w: {"step_run_id": "f" * 32}),
    "list_step_io": (lambda w: {"step_run_ids": [w.ids["ml_step"]]}, lambda w: {"step_run_ids": ["f" * 32]}),
    "find_cached_step": (lambda w: {"cache_key": KEY}, None),
    "latest_step_run": (
        lambda w: {"pipeline": "train", "step": "train", "before": at(100)},
        lambda w: {"pipeline": "nope", "step": "train", "before": at(100)},
    ),
    "lineage": (lambda w: {"artifact_id": w.ids["model"]}, lambda w: {"artifact_id": "f" * 32}),
    "metric_history": (lambda w: {"pipeline": "train"}, lambda w: {"pipeline": "nope"}),
    "get_artifact": (lambda w: {"artifact_id": w.ids["model"]}, lambda w: {"artifact_id": "f" * 32}),
    "get_metadata": (lambda w: {"kind": EntityKind.STEP_RUN, "entity_ids": [w.ids["ml_step"]]}, None),
    "mark_crashed": (lambda w: {"heartbeat_before": at(0), "at": at(50)}, None),
    "delete_run": (lambda w: {"run_id": w.ids["ml_run"]}, lambda w: {"run_id": "f" * 32}),
    "recorded_artifact_ids": (lambda w: {"ids": [w.ids["model"]]}, lambda w: {"ids": ["f" * 32]}),
    "iter_artifacts": (lambda w: {}, None),
    "integrity_problems": (lambda w: {}, None),
    "store_identity": (lambda w: {}, None),
    "step_run_statuses": (lambda w: {"ids": [w.ids["ml_step"]]}, lambda w: {"ids": ["f" * 32]}),
    "deletion_preview": (
        lambda w: {"run_id": w.ids["ml_run"], "also_deleted": []},
        lambda w: {"run_id": "f" * 32, "also_deleted": []},
    ),
}


def test_every_store_method_has_a_case() -> None:
    assert set(CASES) == set(contract_methods()) == set(STORE_RULES)


def expected_status(method: str, caller: str) -> int:
    """What ``caller`` gets calling ``method`` on project ml's objects."""
    rule = STORE_RULES[method]
    principal = CALLERS[caller]
    if principal.server_admin:
        return 200
    if rule.scope == "server":
        return 403
    needed = rule.role or R
    if rule.scope in ("any", "listing"):
        if not principal.projects_with(needed):
            return 403
        if method in LOOK_UPS and not principal.may(R, "ml"):
            return 404  # the named pipeline or run is not there for the caller
        if method in LOOK_UPS and not principal.may(needed, "ml"):
            return 403
        return 200  # restricted to what the caller may see
    if method == "create_run" and principal.role_in("ml") is None:
        return 403  # a run in project ml, where the caller has no role (no object is named)
    # objects: hidden unless readable; too low a role otherwise
    if principal.role_in("ml") is None:
        return 404 if method not in READ_AS_ABSENT else 200
    return 200 if principal.may(needed, "ml") else 403


#: Methods answering an object the caller cannot see as the store answers an absent one: a value.
READ_AS_ABSENT = {
    "get_tags",
    "list_step_io",
    "get_metadata",
    "step_run_statuses",
    "recorded_artifact_ids",
    "list_step_runs",
}
#: Listings that name one object (not there for a caller who cannot read it).
LOOK_UPS = {"get_pipeline", "get_run", "get_run_steps", "invalidate_cache"}
ORDER = ["none", "other", "reader", "writer", "owner", "admin"]  # the last ones may change records


@pytest.mark.parametrize("method", sorted(CASES))
def test_each_store_route_answers_each_role(world: World, method: str) -> None:
    """No role, read, write, admin of ml, admin of another project, server admin: each gets the
    answer its role allows; a too-low role gets a one-line 403 naming the role needed."""
    build, _absent = CASES[method]
    rule = STORE_RULES[method]
    for caller in ORDER:
        answer = world.call(caller, method, **build(world))
        status = 200 if method == "delete_run" and caller == "admin" else expected_status(method, caller)
        if method == "delete_run" and caller == "admin":
            continue  # the owner deleted the run already (404 for the admin is right)
        assert answer.status_code == status, (caller, answer.text)
        if status == 403:
            message = answer.json()["error"]["message"]
            assert answer.json()["error"]["type"] == "PermissionDeniedError" and "\n" not in message
            if rule.role is not None and rule.scope != "server":
                assert f"needs {rule.role.label}" in message, message
            if CALLERS[caller].role_in("ml") is not None and rule.scope == "objects":
                assert f"you have {CALLERS[caller].role_in('ml').label} access to project 'ml'" in message  # type: ignore[union-attr]


@pytest.mark.parametrize("method", sorted(m for m, (_, absent) in CASES.items() if absent is not None))
def test_a_hidden_object_answers_exactly_as_an_absent_one(world: World, method: str) -> None:
    """For a caller outside ml, ml's object and an object that does not exist get the same
    status and body (the id asked for aside): nothing tells that the object exists."""
    build, absent = CASES[method]
    assert absent is not None
    for caller in ("none", "other"):
        hidden = world.call(caller, method, **build(world))
        missing = world.call(caller, method, **absent(world))
        assert hidden.status_code == missing.status_code, (caller, hidden.text, missing.text)
        shown = hidden.text
        for key in ("ml_run", "ml_step", "model"):
            shown = shown.replace(world.ids[key], "f" * 32)
        assert shown.replace("'train'", "'nope'") == missing.text, caller


# ------------------------------------------------------------ what lists show


def test_lists_and_searches_show_only_readable_projects(world: World) -> None:
    runs = world.call("reader", "list_runs").json()
    assert [r["project"] for r in runs] == ["ml"]
    assert [p["name"] for p in world.call("reader", "list_pipelines").json()] == ["train"]
    assert world.call("reader", "count_runs").json() == 1
    assert world.call("admin", "count_runs").json() == 2
    # asking for another project narrows nothing open: the restriction intersects
    assert world.call("reader", "count_runs", projects=["etl"]).json() == 0
    assert world.call("other", "count_runs", projects=["etl", "ml"]).json() == 1
    for entity in ("run", "step", "artifact"):
        page = world.call("reader", "search", entity=entity).json()
        assert page["items"], entity
        tagged = world.call("reader", "search", entity=entity, filter="tag = 'secret-tag'").json()
        assert tagged["items"] == []
    steps = world.call("reader", "search", entity="step").json()["items"]
    assert {s["id"] for s in steps} == {world.ids["ml_step"]}
    artifacts = world.call("reader", "search", entity="artifact").json()["items"]
    assert {a["id"] for a in artifacts} == {world.ids["model"], world.ids["clean"]}  # clean: read by ml
    missing = world.call("reader", "get_run", name_or_id="load-1")
    assert missing.status_code == 404 and "load" not in missing.json()["error"]["message"].replace("'load-1'", "")
    listed = world.call("reader", "get_pipeline", name="nope").json()["error"]["message"]
    assert "train" in listed and "load" not in listed


def test_caches_never_cross_into_an_unreadable_project(world: World) -> None:
    hit = world.call("reader", "find_cached_step", cache_key=KEY).json()
    assert hit["step_run"]["id"] == world.ids["ml_step"]  # not etl's newer entry
    assert world.call("other", "find_cached_step", cache_key=KEY).json()["run_name"].startswith("load")
    assert world.call("admin", "find_cached_step", cache_key=KEY).json()["run_name"].startswith("load")
    entries = world.call("reader", "list_cache_entries").json()
    assert [e["pipeline_name"] for e in entries] == ["train"]
    assert world.call("owner", "invalidate_cache", at=at(40)).json() == 1  # ml's entry only
    assert world.call("other", "find_cached_step", cache_key=KEY).json() is not None
    assert world.call("reader", "find_cached_step", cache_key=KEY).json() is None
    recorded = world.call(
        "writer",
        "record_cached_step",
        step=StepRunCreate(run_id=world.ids["ml_run"], name="reuse", cache_key=KEY),
        cached_from_id=world.ids["etl_first"],
        outputs={},
    )
    assert recorded.status_code == 404  # an etl entry named by id is not there for ml's writer


def test_lineage_across_projects_shows_hidden_placeholders(world: World) -> None:
    graph = world.call("reader", "lineage", artifact_id=world.ids["model"], direction="upstream").json()
    ids = world.ids
    assert set(graph["hidden"]) == {ids["etl_step"], ids["source"], ids["etl_first"]}
    assert graph["steps"][ids["ml_step"]]["name"] == "train"
    assert graph["artifacts"][ids["clean"]]["uri"].endswith("/clean")  # read by ml: ml's too
    hidden_step = graph["steps"][ids["etl_step"]]
    assert hidden_step["name"] == "hidden" and hidden_step["run_name"] == "" and hidden_step["pipeline_name"] == ""
    hidden_artifact = graph["artifacts"][ids["source"]]
    assert hidden_artifact["uri"] == "" and hidden_artifact["type"] == "hidden"
    assert all(e["name"] == "" for e in graph["edges"] if e["step_run_id"] == ids["etl_step"])
    assert ids["source"] not in graph["producers"]
    hidden_nodes = [graph["steps"].get(i) or graph["artifacts"][i] for i in graph["hidden"]]
    assert "load" not in str(hidden_nodes) and "extract" not in str(hidden_nodes)
    full = world.call("admin", "lineage", artifact_id=world.ids["model"], direction="upstream").json()
    assert full["hidden"] == [] and full["steps"][ids["etl_step"]]["name"] == "clean"


def test_creating_a_run_needs_write_in_its_project(world: World) -> None:
    denied = world.call("reader", "create_run", run=RunCreate(pipeline_name="train", name="x-{n}", project="ml"))
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == (
        "you have read access to project 'ml'; recording runs needs write: ask a project admin"
    )
    elsewhere = world.call("writer", "create_run", run=RunCreate(pipeline_name="new", name="n-{n}", project="etl"))
    assert elsewhere.status_code == 403 and "no role in project 'etl'" in elsewhere.json()["error"]["message"]
    taken = world.call("writer", "create_run", run=RunCreate(pipeline_name="load", name="l-{n}", project="ml"))
    assert taken.status_code == 409 and "etl" not in taken.json()["error"]["message"]
    conflict = world.call("admin", "create_run", run=RunCreate(pipeline_name="load", name="l-{n}", project="ml"))
    assert conflict.status_code == 409 and "belongs to project 'etl'" in conflict.json()["error"]["message"]


def test_the_ownership_token_is_not_for_readers(world: World) -> None:
    assert world.call("reader", "store_identity").status_code == 403
    token = world.call("writer", "store_identity")
    assert token.status_code == 200 and token.json()["token"]


# ------------------------------------------------------------ artifact files


def put(world: World, caller: str, path: str, data: bytes = b"x") -> Any:
    import hashlib

    headers = {CALLER: caller, "Content-SHA256": hashlib.sha256(data).hexdigest()}
    return world.client.put("/api/v1/artifacts/file", params={"path": path}, content=data, headers=headers)


def test_artifact_files_follow_their_pipeline_s_project(world: World) -> None:
    root = world.files.root
    ml_file, etl_file = f"{root}/stores/s/train/x/model/data", f"{root}/stores/s/load/x/clean/data"
    assert put(world, "admin", etl_file, b"etl").status_code == 200
    assert put(world, "reader", ml_file).status_code == 403
    assert put(world, "writer", ml_file, b"ml").status_code == 200
    assert put(world, "writer", etl_file).status_code == 404  # etl is not there for ml's writer

    def get(caller: str, path: str) -> Any:
        return world.client.get("/api/v1/artifacts/file", params={"path": path}, headers={CALLER: caller})

    assert get("reader", ml_file).content == b"ml"
    hidden, absent = get("reader", etl_file), get("reader", f"{root}/stores/s/train/x/nothing")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["error"]["message"] == f"no file at {etl_file}"
    assert get("none", ml_file).status_code == 404
    for route in ("stat", "hash"):
        answer = world.client.get(f"/api/v1/artifacts/{route}", params={"path": etl_file}, headers={CALLER: "reader"})
        assert answer.status_code == 404 and answer.json()["error"]["message"] == f"nothing at {etl_file}"
    removed = world.client.post("/api/v1/artifacts/remove", json={"path": ml_file}, headers={CALLER: "reader"})
    assert removed.status_code == 403
    moved = world.client.post(
        "/api/v1/artifacts/move", json={"source": ml_file, "target": etl_file}, headers={CALLER: "writer"}
    )
    assert moved.status_code == 404 and get("admin", ml_file).content == b"ml"


def test_the_owner_file_and_store_listings(world: World) -> None:
    root = world.files.root
    owner = f"{root}/stores/s/{OWNER_FILE}"
    assert put(world, "reader", owner).status_code == 403
    assert put(world, "writer", owner, b"{}").status_code == 200  # claiming: once
    assert put(world, "writer", owner, b"{}").status_code == 403  # replacing: administrators only
    download = world.client.get("/api/v1/artifacts/file", params={"path": owner}, headers={CALLER: "reader"})
    assert download.status_code == 403
    put(world, "admin", f"{root}/stores/s/load/x/clean/data")
    put(world, "admin", f"{root}/stores/s/train/x/model/data")

    def listing(caller: str, path: str) -> Any:
        return world.client.get("/api/v1/artifacts/list", params={"path": path}, headers={CALLER: caller})

    names = [e["name"].rsplit("/", 1)[-1] for e in listing("owner", f"{root}/stores/s").json()]
    assert names == [OWNER_FILE, "train"]
    assert len(listing("admin", f"{root}/stores/s").json()) == 3
    assert listing("writer", f"{root}/stores/s").status_code == 403
    assert listing("reader", f"{root}/stores/s/train").status_code == 200
    assert listing("reader", f"{root}/stores/s/load").status_code == 404
    removed = world.client.post("/api/v1/artifacts/remove", json={"path": owner}, headers={CALLER: "owner"})
    assert removed.status_code == 403


def test_a_search_walking_lineage_from_a_hidden_artifact_finds_nothing(world: World) -> None:
    ids = world.ids
    walk = f"downstream_of('{ids['source']}')"
    assert world.call("admin", "search", entity="step", filter=walk).json()["items"]
    hidden = world.call("reader", "search", entity="step", filter=walk).json()
    absent = world.call("reader", "search", entity="step", filter=f"downstream_of('{'f' * 32}')").json()
    assert hidden == absent == {"items": [], "next_page_token": None}
    readable = world.call("reader", "search", entity="artifact", filter=f"downstream_of('{ids['clean']}')").json()
    assert [a["id"] for a in readable["items"]] == [ids["model"]]


def test_an_artifact_is_readable_in_the_projects_that_used_it(world: World) -> None:
    ids = world.ids

    def status(caller: str, key: str) -> int:
        return int(world.call(caller, "get_artifact", artifact_id=key).status_code)

    assert status("reader", ids["clean"]) == 200  # made in etl, read by ml's training
    assert status("reader", ids["source"]) == 404  # etl's only
    assert status("other", ids["clean"]) == 200 and status("other", ids["model"]) == 404
    external = world.call("writer", "register_artifact", artifact=artifact("ext"), at=at(1)).json()
    assert status("writer", external["id"]) == 200  # unclaimed: for callers who may register
    assert status("reader", external["id"]) == 404
    tagged = world.call("reader", "add_tags", kind=EntityKind.ARTIFACT, entity_id=ids["clean"], tags=["x"])
    assert tagged.status_code == 403  # readable through ml, where the reader may not write


def test_the_rest_client_raises_the_server_s_refusals_as_their_classes() -> None:
    """403 and 409 travel as their classes: the CLI prints their one line."""
    from pipeledger.exceptions import ConflictError, PermissionDeniedError
    from pipeledger.metadata_store.rest.protocol import error_status, rebuild_error

    denied = rebuild_error("PermissionDeniedError", "you have read access to project 'ml'; ...")
    assert isinstance(denied, PermissionDeniedError) and error_status(denied) == 403
    conflict = rebuild_error("ConflictError", "pipeline 'x' belongs to project 'ml', not 'default'")
    assert isinstance(conflict, ConflictError) and error_status(conflict) == 409
