"""The control plane's domain errors as problem+json answers (on top of the kernel's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from controlplane.errors import (
    ApplyFailed,
    BadRequest,
    Conflict,
    DriftConflict,
    Invalid,
    TooBusy,
    TooLarge,
)
from controlplane.kernel.problems import answer_as, install_problem_handlers, problem
from controlplane.permissions import Forbidden, NotVisible

OnDenied = Callable[[Request, str, str], Awaitable[None]]


def install_error_handlers(app: FastAPI, on_denied: OnDenied) -> None:
    """Map domain exceptions to problem responses; denials are reported to `on_denied`."""
    install_problem_handlers(app)

    for error, status, reason in ((NotVisible, 404, "not_visible"), (Forbidden, 403, "forbidden")):
        app.add_exception_handler(error, _reporting_denial(on_denied, status, reason))
    answer_as(app, 409, Conflict)
    answer_as(app, 400, BadRequest)
    answer_as(app, 422, Invalid)
    answer_as(app, 413, TooLarge)
    answer_as(app, 502, ApplyFailed)

    @app.exception_handler(DriftConflict)
    async def _drifted(_request: Request, exc: DriftConflict) -> JSONResponse:
        return problem(409, str(exc), drift=exc.drift)

    @app.exception_handler(TooBusy)
    async def _too_busy(_request: Request, exc: TooBusy) -> JSONResponse:
        response = problem(429, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response


def _reporting_denial(
    on_denied: OnDenied, status: int, reason: str
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def _denied(request: Request, exc: Exception) -> JSONResponse:
        await on_denied(request, reason, str(exc))
        return problem(status, str(exc))

    return _denied
