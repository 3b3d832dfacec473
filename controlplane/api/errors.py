"""The control plane's domain errors as problem+json answers (on top of the kernel's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from controlplane.errors import ApplyFailed, BadRequest, Conflict, Invalid, TooBusy
from controlplane.kernel.problems import install_problem_handlers, problem
from controlplane.permissions import Forbidden, NotVisible

OnDenied = Callable[[Request, str, str], Awaitable[None]]


def install_error_handlers(app: FastAPI, on_denied: OnDenied) -> None:
    """Map domain exceptions to problem responses; denials are reported to `on_denied`."""
    install_problem_handlers(app)

    @app.exception_handler(NotVisible)
    async def _not_visible(request: Request, exc: NotVisible) -> JSONResponse:
        await on_denied(request, "not_visible", str(exc))
        return problem(404, str(exc))

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        await on_denied(request, "forbidden", str(exc))
        return problem(403, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return problem(409, str(exc))

    @app.exception_handler(BadRequest)
    async def _bad(_request: Request, exc: BadRequest) -> JSONResponse:
        return problem(400, str(exc))

    @app.exception_handler(Invalid)
    async def _invalid_value(_request: Request, exc: Invalid) -> JSONResponse:
        return problem(422, str(exc))

    @app.exception_handler(TooBusy)
    async def _too_busy(_request: Request, exc: TooBusy) -> JSONResponse:
        response = problem(429, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(ApplyFailed)
    async def _apply_failed(_request: Request, exc: ApplyFailed) -> JSONResponse:
        return problem(502, str(exc))
