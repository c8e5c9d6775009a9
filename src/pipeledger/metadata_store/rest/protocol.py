"""The wire protocol of ``pipeledger server`` and the ``rest`` flavor, built from the contract.

Every public method of :class:`~pipeledger.metadata_store.base.MetadataStore` (but ``close``,
``describe`` and what is derived on the client) is one route, ``POST /api/v1/store/<method>``,
whose JSON body holds the method's arguments by name and whose response is the method's
return value, both serialised by pydantic from the method's own type hints and the records of
:mod:`pipeledger.models`. Nothing here is written per method: a method added to the contract
gets its route, its request and response schemas (in the OpenAPI document) and its client
encoding from its signature. ``iter_artifacts`` is the one streaming route: its response is
one JSON array (a batch) per line.

Errors travel as ``{"error": {"type": "<exception class>", "message": "..."}}`` with an HTTP
status (:data:`ERROR_STATUS`); the client raises the same class of
:mod:`pipeledger.exceptions` (or ``ValueError``) with the server's message.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from pipeledger import exceptions, models
from pipeledger.metadata_store import base
from pipeledger.metadata_store.base import MetadataStore

#: The API's version. A client and a server of different versions refuse each other.
API_VERSION = "1"
#: The prefix of every versioned route.
API_PREFIX = f"/api/v{API_VERSION}"
#: The request header naming the client's API version.
VERSION_HEADER = "Pipeledger-Api-Version"

#: Contract methods that are not routes: local to the client, or derived there from others.
NOT_ROUTED = frozenset({"close", "describe", "store_id", "projects_of"})
#: Methods whose response is streamed, one JSON array (a batch of records) per line.
STREAMED = frozenset({"iter_artifacts"})

#: HTTP status of each error class sent by the server (the most specific class wins).
ERROR_STATUS: dict[type[Exception], int] = {
    exceptions.AuthenticationError: 401,
    exceptions.AccessDeniedError: 403,
    exceptions.QueryError: 422,
    exceptions.DefinitionError: 422,
    exceptions.CacheEntryGoneError: 410,
    exceptions.NotFoundError: 404,
    exceptions.RunExistsError: 409,
    exceptions.ConflictError: 409,
    exceptions.PermissionDeniedError: 403,
    exceptions.StepRunExistsError: 409,
    exceptions.UnsupportedOperationError: 501,
    exceptions.StoreUnavailableError: 503,
    exceptions.TransientStoreError: 503,
    exceptions.SchemaVersionError: 500,
    exceptions.ConfigError: 400,
    exceptions.PipeledgerError: 500,
    ValueError: 422,
}


@dataclass(frozen=True)
class Method:
    """One contract method on the wire: its name, a pydantic model of its arguments and an
    adapter of its return value."""

    name: str
    doc: str
    params: type[BaseModel]
    result: TypeAdapter[Any]
    result_type: Any
    streamed: bool

    def encode_args(self, arguments: dict[str, Any]) -> bytes:
        """The JSON request body for these keyword arguments."""
        return self.params(**arguments).model_dump_json().encode()

    def decode_args(self, body: bytes) -> dict[str, Any]:
        """The keyword arguments of a JSON request body (validated: unknown or ill-typed
        arguments raise ``pydantic.ValidationError``)."""
        parsed = self.params.model_validate_json(body or b"{}")
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}

    def encode_result(self, value: Any) -> bytes:
        """The JSON response body for a return value."""
        return self.result.dump_json(value)

    def decode_result(self, body: bytes) -> Any:
        """The return value of a JSON response body."""
        return self.result.validate_json(body)


_CONCRETE = {"Collection": list, "Sequence": list, "Mapping": dict}


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    # On the wire, abstract collections are JSON arrays and objects: lists and dicts.
    namespace = {**vars(typing), **vars(models), **vars(base), **_CONCRETE}
    return typing.get_type_hints(function, globalns=namespace)


def _method(name: str, function: Callable[..., Any]) -> Method:
    hints = _hints(function)
    fields: dict[str, Any] = {}
    for parameter in list(inspect.signature(function).parameters.values())[1:]:  # self
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (hints[parameter.name], default)
    params = create_model(
        f"{''.join(part.title() for part in name.split('_'))}Arguments",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    result_type = hints.get("return", Any)
    streamed = name in STREAMED
    if streamed:  # Iterator[list[X]] -> one line per list[X]
        result_type = typing.get_args(result_type)[0]
    first_line = (inspect.getdoc(function) or name).split("\n\n")[0].replace("\n", " ")
    return Method(name, first_line, params, TypeAdapter(result_type), result_type, streamed)


@cache
def contract_methods() -> dict[str, Method]:
    """Every routed contract method by name, in the order the contract defines them."""
    found: dict[str, Method] = {}
    for name, function in vars(MetadataStore).items():
        if name.startswith("_") or name in NOT_ROUTED or not inspect.isfunction(function):
            continue
        found[name] = _method(name, function)
    return found


def error_status(error: BaseException) -> int:
    """The HTTP status the server answers ``error`` with."""
    for cls in type(error).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500


def error_detail(error: BaseException) -> dict[str, Any]:
    """The JSON-compatible attributes of ``error`` (``QueryError``'s filter and column...), sent
    with its message so that the client's copy has them too."""
    return {
        key: value
        for key, value in vars(error).items()
        if not key.startswith("_") and (value is None or isinstance(value, (str, int, float, bool)))
    }


def rebuild_error(name: str, message: str, detail: dict[str, Any] | None = None) -> Exception | None:
    """The exception the server named, with its message (exactly) and attributes; None for a
    name that is not one of :mod:`pipeledger.exceptions` or ``ValueError``."""
    cls = error_class(name)
    if cls is None:
        return None
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    for key, value in (detail or {}).items():
        setattr(error, key, value)
    return error


def error_class(name: str) -> type[Exception] | None:
    """The exception class a client raises for an error the server named ``name``: a class of
    :mod:`pipeledger.exceptions`, or ``ValueError``; None for any other name."""
    if name == "ValueError":
        return ValueError
    found = getattr(exceptions, name, None)
    if isinstance(found, type) and issubclass(found, exceptions.PipeledgerError):
        return found
    return None
