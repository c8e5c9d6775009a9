"""How the server answers errors: one JSON shape, ``{"error": {"type", "message"}}``.

A :class:`~pipeledger.exceptions.PipeledgerError` or ``ValueError`` raised by the store keeps
its class name and message (the ``rest`` client raises the same class); anything else is a bug
of the server: it is logged with its traceback, and the caller gets only its class name.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from pipeledger.exceptions import PipeledgerError
from pipeledger.metadata_store.rest.protocol import error_detail, error_status

log = logging.getLogger("pipeledger.server")


class ApiError(Exception):
    """An error answered with ``status`` and a body naming ``type`` and ``message``."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message


def error_response(status: int, type_: str, message: str, detail: dict[str, Any] | None = None) -> JSONResponse:
    """The response of an error (``detail``: the exception's attributes, if any)."""
    body: dict[str, Any] = {"type": type_, "message": message}
    if detail:
        body["detail"] = detail
    return JSONResponse({"error": body}, status_code=status)


def install_handlers(app: FastAPI) -> None:
    """Answer every error raised by a route in the one JSON shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.type, exc.message)

    @app.exception_handler(PipeledgerError)
    async def pipeledger_error(request: Request, exc: PipeledgerError) -> JSONResponse:
        return error_response(error_status(exc), type(exc).__name__, str(exc), error_detail(exc))

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError) -> JSONResponse:
        if isinstance(exc, ValidationError):
            return error_response(422, "ValueError", f"invalid request: {_first_error(exc)}")
        return error_response(422, "ValueError", str(exc))

    @app.exception_handler(OverflowError)
    async def overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # A number beyond what the database or a date can hold (e.g. a limit of 2**70): the
        # request's fault, found by fuzzing (tests/test_fuzz_api.py).
        return error_response(422, "ValueError", f"invalid request: a number is out of range ({exc})")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        where = ".".join(str(part) for part in errors[0].get("loc", ())) if errors else ""
        detail = errors[0].get("msg", "invalid") if errors else "invalid"
        return error_response(422, "ValueError", f"invalid request: {where}: {detail}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(
            500, "ServerError", f"the server failed with {type(exc).__name__}; its log has the traceback"
        )


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))
