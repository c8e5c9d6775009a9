"""The metadata store's routes: one ``POST /api/v1/store/<method>`` per contract method.

Each route is built from :func:`pipeledger.metadata_store.rest.protocol.contract_methods`: the
body is decoded and validated by the method's argument model, the method runs on the server's
store in a worker thread (store calls block), and its return value is encoded by the method's
result adapter (pydantic's serializer, in Rust). The OpenAPI document gets each route's request
and response schemas from the same models. A method added to the contract needs nothing here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from pipeledger.exceptions import NotFoundError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.rest.protocol import Method, contract_methods
from pipeledger.server.auth import authorize, principal_of
from pipeledger.server.security.access import Access
from pipeledger.server.security.audit import note, note_denied, target_of
from pipeledger.server.security.policy import STORE_RULES, After, Answer, guard

#: Where the schemas of the records go in the OpenAPI document.
REF_TEMPLATE = "#/components/schemas/{model}"
JSON_TYPE = "application/json"
NDJSON_TYPE = "application/x-ndjson"


def store_router(schemas: dict[str, Any]) -> APIRouter:
    """The router of every contract method; the JSON schemas of the records the routes use are
    added to ``schemas`` (for the OpenAPI document's components)."""
    router = APIRouter(prefix="/store", tags=["metadata store"], dependencies=[Depends(authorize)])
    for method in contract_methods().values():
        router.add_api_route(
            f"/{method.name}",
            _endpoint(method),
            methods=["POST"],
            name=method.name,
            summary=method.doc,
            response_class=Response,
            openapi_extra={**_openapi(method, schemas), **STORE_RULES[method.name].operation()},
        )
    return router


def store_of(request: Request) -> MetadataStore:
    """The metadata store the server fronts (set when the application starts)."""
    store: MetadataStore = request.app.state.store
    return store


def _endpoint(method: Method) -> Callable[[Request], Any]:
    """The route of ``method``: its arguments decoded, its rule applied (:func:`guard`), the
    store called in a worker thread, its result filtered by the rule and encoded."""
    if method.streamed:

        async def stream(request: Request) -> StreamingResponse:
            arguments = method.decode_args(await request.body())
            note(request, target=target_of(arguments))
            await run_in_threadpool(_guarded, method, request, arguments)  # a listing: no filter
            batches: Iterator[Any] = getattr(store_of(request), method.name)(**arguments)
            return StreamingResponse(_lines(method, batches), media_type=NDJSON_TYPE)

        return stream

    async def call(request: Request) -> Response:
        arguments = method.decode_args(await request.body())
        note(request, target=target_of(arguments))
        result = await run_in_threadpool(_call, method, request, arguments)
        return Response(method.encode_result(result), media_type=JSON_TYPE)

    return call


def _guarded(method: Method, request: Request, arguments: dict[str, Any]) -> After | Answer | None:
    store = store_of(request)
    principal = principal_of(request)
    access = Access(principal, store)
    try:
        return guard(method.name, principal, access, arguments)
    except NotFoundError:
        hidden = hidden_objects(access)
        if hidden:  # a 404 that hides an object of another project: a denial, for the audit log
            (kind, key), projects = hidden[0]
            note_denied(
                request,
                f"{principal.name} may not read {kind} {key} (projects {', '.join(sorted(projects))}); answered 404",
                project=min(projects) if projects else None,
                target=f"{kind}={key}",
            )
        raise


def hidden_objects(access: Access) -> list[tuple[tuple[str, str], frozenset[str]]]:
    """The objects ``access`` looked up that exist but that its caller may not read."""
    looked_up = dict(access._found)  # what the checks looked up; absent objects are None
    return [
        (found, projects)
        for found, projects in looked_up.items()
        if projects is not None and not access.may_read(*found)
    ]


def _call(method: Method, request: Request, arguments: dict[str, Any]) -> Any:
    outcome = _guarded(method, request, arguments)
    if isinstance(outcome, Answer):
        return outcome.value
    result = getattr(store_of(request), method.name)(**arguments)
    return result if outcome is None else outcome(result)


async def _lines(method: Method, batches: Iterator[Any]) -> AsyncIterator[bytes]:
    async for batch in iterate_in_threadpool(batches):
        yield method.encode_result(batch) + b"\n"


def _openapi(method: Method, schemas: dict[str, Any]) -> dict[str, Any]:
    request = method.params.model_json_schema(ref_template=REF_TEMPLATE)
    schemas.update(request.pop("$defs", {}))
    response = method.result.json_schema(ref_template=REF_TEMPLATE)
    schemas.update(response.pop("$defs", {}))
    content_type = NDJSON_TYPE if method.streamed else JSON_TYPE
    return {
        "requestBody": {"required": True, "content": {JSON_TYPE: {"schema": request}}},
        "responses": {"200": {"description": method.doc, "content": {content_type: {"schema": response}}}},
    }


def add_schemas(app: FastAPI, schemas: dict[str, Any]) -> None:
    """Put the records' ``schemas`` into the OpenAPI document of ``app``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
