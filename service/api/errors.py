"""Error responses: every bad input becomes a 4xx naming the field and the reason."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)


def _loc(error: dict[str, Any]) -> tuple[str | int, ...]:
    return tuple(error.get("loc", ()))


def _reason(error: dict[str, Any]) -> str:
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")
