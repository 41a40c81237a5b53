"""Error responses: every bad input becomes a 4xx naming the field and the reason."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError

from search_spaces.spec import Problem, SpecError
from service.store.trial_filters import QueryError

log = logging.getLogger(__name__)


def problems_response(problems: list[Problem], status_code: int = 422) -> JSONResponse:
    """A 422 listing each bad field (dotted path and loc) with its reason."""
    detail = [{"field": p.field, "loc": list(p.loc), "reason": p.reason} for p in problems]
    return JSONResponse({"detail": detail}, status_code=status_code)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(SpecError)
    async def _spec_error(_request: Request, exc: SpecError) -> JSONResponse:
        return problems_response(exc.problems)

    @app.exception_handler(QueryError)
    async def _query_error(_request: Request, exc: QueryError) -> JSONResponse:
        return problems_response([Problem(("query", exc.field), exc.reason)])

    @app.exception_handler(RequestValidationError)
    async def _request_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [Problem(_loc(e), _reason(e)) for e in exc.errors()]
        return problems_response(problems)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
            return await _unexpected(request, exc)
        # The database went away or refuses connections (restarting, network, locked): the
        # pool has been reset, a retry works.
        log.warning(
            "database connection lost on %s %s: %s", request.method, request.url.path, exc.orig
        )
        return JSONResponse(
            {"detail": "database unavailable; retry the request"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "properties": {
        "field": {"type": "string", "description": "Dotted path, e.g. task.dataset.train"},
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "reason": {"type": "string"},
    },
    "required": ["field", "loc", "reason"],
}
ERROR_RESPONSE = {
    "description": "Client error: detail is a message (400, 404, 409, 413) or, for a 422, the "
    "list of bad fields with their reasons",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}},
}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Make an OpenAPI document tell the truth about errors: every 422 is ``{detail: [Problem]}``
    (not FastAPI's ``{detail: [{loc, msg, type}]}``) and any operation may answer a 4xx whose
    ``detail`` is a message or that list."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    problems = {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}}
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["HTTPValidationError"] = {
        "title": "HTTPValidationError",
        "type": "object",
        "properties": {"detail": problems},
        "required": ["detail"],
    }
    schemas.pop("ValidationError", None)
    schemas["ErrorMessage"] = {
        "title": "ErrorMessage",
        "type": "object",
        "properties": {"detail": {"anyOf": [{"type": "string"}, problems]}},
        "required": ["detail"],
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("4XX", ERROR_RESPONSE)
    return schema


def _loc(error: dict[str, Any]) -> tuple[str | int, ...]:
    return tuple(error.get("loc", ()))


def _reason(error: dict[str, Any]) -> str:
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")
