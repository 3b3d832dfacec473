"""The control-plane FastAPI application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from sqlalchemy import text

from controlplane import audit
from controlplane.api.errors import install_error_handlers
from controlplane.api.routes import audit as audit_routes
from controlplane.api.routes import (
    backups,
    billing,
    bulk,
    bundles,
    domains,
    env,
    imports,
    observability,
    operations,
    packages,
    sites,
    staging,
    tenants,
    users,
    vocabulary,
)
from controlplane.backups.schedule import BackupSchedule
from controlplane.billing.schedule import BillingSchedule
from controlplane.cron.schedule import CronSchedule
from controlplane.kernel.identity import Principal
from controlplane.kernel.logs import configure_logging, get_logger
from controlplane.kernel.ratelimit import SlidingWindow
from controlplane.kernel.request_id import RequestIdMiddleware
from controlplane.platform import Platform, build_platform, cap_site_connections
from controlplane.schemas import Problem
from controlplane.settings import Settings, get_settings

log = get_logger("aipress.app")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


PROBLEM_STATUSES = {
    "400": "The request cannot be carried out as asked",
    "401": "Missing, invalid or expired bearer token",
    "403": "The caller's role may not do this",
    "404": "Not found, or not visible to the caller",
    "409": "Conflicts with existing state (duplicate, busy site)",
    "422": "A value breaks a rule; `errors` lists each field",
}


def document_problems(app: FastAPI) -> None:
    """Describe every error answer in the OpenAPI document as application/problem+json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
            Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, path_item in schema.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                for status, description in PROBLEM_STATUSES.items():
                    if status == "422" and status not in responses:
                        continue  # no parameters or body to validate
                    responses[status] = {"description": description, "content": problem}
        for name in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings | None = None,
    *,
    platform_factory: Callable[[Settings], Platform] | None = None,
) -> FastAPI:
    """Build the app; the platform (database, engine) is built on start-up."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_file, settings.log_json)
        # Fewer request threads than anyio's 40: they share one interpreter lock, and past a
        # few they only add switching (measured by benchmarks/api.py).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        factory = platform_factory or build_platform
        platform = await asyncio.to_thread(factory, settings)
        app.state.platform = platform
        recovered = platform.engine.recover()
        log.info("controlplane.started", provider=platform.provider.name, recovered=len(recovered))
        try:
            capped = await asyncio.to_thread(cap_site_connections, platform)
            log.info("controlplane.site_connections_capped", users=len(capped))
        except Exception as exc:  # the next start tries again; a failure does not stop serving
            log.warning("controlplane.site_connections_cap_failed", error_type=type(exc).__name__)
        schedule = None
        if settings.provider == "local" and settings.billing_schedule:
            schedule = BillingSchedule(platform)
            schedule.start()
        cron = None
        if settings.provider == "local" and settings.cron_schedule:
            cron = CronSchedule(platform)
            cron.start()
        backup_schedule = None
        if settings.provider == "local" and settings.backup_schedule:
            backup_schedule = BackupSchedule(platform)
            backup_schedule.start()
        try:
            yield
        finally:
            if backup_schedule is not None:
                await asyncio.to_thread(backup_schedule.stop)
            if cron is not None:
                await asyncio.to_thread(cron.stop)
            if schedule is not None:
                await asyncio.to_thread(schedule.stop)
            await asyncio.to_thread(platform.close)

    app = FastAPI(
        title="AIPress control plane",
        version="1.0.0",
        description="Tenants, sites, operations, env vars and audit of AIPress.",
        lifespan=lifespan,
        # Starlette's slash redirect builds an absolute Location from the Host header.
        redirect_slashes=False,
    )
    app.add_middleware(RequestIdMiddleware)

    # A refused request costs the caller nothing: without a bound it could fill the log.
    denied_limiter = SlidingWindow(settings.audit_denied_per_minute)

    async def on_denied(request: Request, reason: str, _message: str) -> None:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None or request.method not in MUTATING:
            return
        if denied_limiter.admit(principal.key) is not None:
            log.warning("audit.denied_suppressed", actor=principal.sub, reason=reason)
            return
        platform: Platform = request.app.state.platform
        route = getattr(request.scope.get("route"), "path", None)
        action, tenant_id, extra = audit.denied_entry(
            principal, method=request.method, route=route, path_params=request.path_params
        )

        def write() -> None:
            with platform.sessions() as session:
                # The exception's message quotes names from the path: not kept.
                audit.record(
                    session,
                    principal=principal,
                    action=action,
                    tenant_id=tenant_id,
                    target=route,
                    outcome="denied",
                    detail={"reason": reason, **extra},
                )
                session.commit()

        await asyncio.to_thread(write)

    install_error_handlers(app, on_denied)
    document_problems(app)

    @app.get("/healthz", tags=["health"])
    def healthz(request: Request) -> dict[str, str]:
        """Liveness and database reachability."""
        platform: Platform = request.app.state.platform
        with platform.sessions() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "provider": platform.provider.name}

    for router in (
        tenants.router,
        sites.router,
        domains.router,
        observability.router,
        operations.router,
        env.router,
        audit_routes.router,
        users.router,
        billing.router,
        backups.router,
        staging.router,
        imports.router,
        bundles.router,
        packages.router,
        vocabulary.router,
        bulk.router,
    ):
        app.include_router(router)
    return app
