"""The control-plane FastAPI application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from sqlalchemy import text

from controlplane import audit
from controlplane.api.errors import install_error_handlers
from controlplane.api.middleware import RequestIdMiddleware
from controlplane.api.routes import audit as audit_routes
from controlplane.api.routes import env, observability, operations, sites, tenants, users
from controlplane.logs import configure_logging, get_logger
from controlplane.permissions import Principal
from controlplane.platform import Platform, build_platform
from controlplane.settings import Settings, get_settings

log = get_logger("aipress.app")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


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
        factory = platform_factory or build_platform
        platform = await asyncio.to_thread(factory, settings)
        app.state.platform = platform
        recovered = platform.engine.recover()
        log.info("controlplane.started", provider=platform.provider.name, recovered=len(recovered))
        try:
            yield
        finally:
            await asyncio.to_thread(platform.close)

    app = FastAPI(
        title="AIPress control plane",
        version="1.0.0",
        description="Tenants, sites, operations, env vars and audit of AIPress.",
        lifespan=lifespan,
    )
    app.add_middleware(RequestIdMiddleware)

    async def on_denied(request: Request, reason: str, message: str) -> None:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None or request.method not in MUTATING:
            return
        platform: Platform = request.app.state.platform

        def write() -> None:
            with platform.sessions() as session:
                audit.record(
                    session,
                    principal=principal,
                    action=f"{request.method} {request.url.path}",
                    tenant_id=request.path_params.get("tenant_id"),
                    target=request.url.path,
                    outcome="denied",
                    detail={"reason": reason, "message": message},
                )
                session.commit()

        await asyncio.to_thread(write)

    install_error_handlers(app, on_denied)

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
        observability.router,
        operations.router,
        env.router,
        audit_routes.router,
        users.router,
    ):
        app.include_router(router)
    return app
