"""Errors as application/problem+json, each with a detail that says what to fix."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from controlplane.kernel.auth import InvalidToken
from controlplane.kernel.identity import InvalidClaims
from controlplane.kernel.logs import current_request_id, get_logger

log = get_logger("aipress.api")
PROBLEM = "application/problem+json"


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "request_id": current_request_id(),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": 'Bearer realm="aipress"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        location = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        errors.append({"field": location, "message": message})
    return errors


def answer_as(app: FastAPI, status: int, *errors: type[Exception]) -> None:
    """Answer each of `errors` with `status` and the exception's own message as the detail."""

    async def _answer(_request: Request, exc: Exception) -> JSONResponse:
        return problem(status, str(exc))

    for error in errors:
        app.add_exception_handler(error, _answer)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer bad requests, bad tokens, database trouble and surprises as problems."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, detail, errors=errors)

    # Starlette's class, not FastAPI's subclass: the router's 404/405 and FastAPI's own 400
    # ("error parsing the body") are Starlette HTTPExceptions and must be problems too.
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = str(exc.detail)
        path = request.url.path
        if exc.status_code == 404 and path.endswith("/") and path != "/":
            detail = f"{path} does not exist; paths take no trailing slash: {path.rstrip('/')}"
        response = problem(exc.status_code, detail)
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response

    answer_as(app, 401, InvalidToken)
    answer_as(app, 403, InvalidClaims)

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, _exc: IntegrityError) -> JSONResponse:
        return problem(409, "the change conflicts with an existing resource; reload and retry")

    @app.exception_handler(OperationalError)
    async def _database_busy(_request: Request, exc: OperationalError) -> JSONResponse:
        if "locked" in str(exc.orig) or "busy" in str(exc.orig):
            log.warning("request.database_busy")
            response = problem(503, "the database is busy; retry in a moment")
            response.headers["Retry-After"] = "1"
            return response
        log.error("request.database_error", error_type=type(exc.orig).__name__)
        return problem(500, "internal error; quote the request id when reporting it")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("request.unhandled", error_type=type(exc).__name__, exc_info=exc)
        return problem(500, "internal error; quote the request id when reporting it")
