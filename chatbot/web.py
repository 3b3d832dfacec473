"""What the browser gets from the chatbot service: the widget and dashboard files, sign-in,
and a thin proxy of the control-plane API (the control plane itself stays private).

The proxy forwards `/api/v1/...` to the control plane's `/v1/...` with the caller's own
bearer token, unchanged: it holds no logic, and the control plane decides every request.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from chatbot.settings import ChatSettings
from controlplane.kernel.auth import LocalTokenIssuer, load_sign_in_key, sign_in_key_matches
from controlplane.kernel.identity import Role
from controlplane.kernel.problems import problem

WEBCHAT_DIR = Path(__file__).resolve().parent.parent / "webchat"
FORWARDED_HEADERS = ("authorization", "content-type", "x-request-id", "accept")
# Event streams one caller (one bearer token) may hold open through the proxy at once.
MAX_STREAMS_PER_CALLER = 5
RETURNED_HEADERS = ("content-type", "x-request-id", "retry-after", "www-authenticate",
                    "content-disposition", "cache-control")  # fmt: skip
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' https://www.gstatic.com; "
        "connect-src 'self' ws: wss: https://*.googleapis.com; img-src 'self' data:; "
        "style-src 'self'; frame-src https://*.firebaseapp.com; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
SIGN_IN_KEY_HEADER = "X-AIPress-Sign-In-Key"
# What a stored user id may look like to be signed in as: no "/" or leading "." (the id
# becomes a path segment of the control-plane request).
LOCAL_UID_PATTERN = r"^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]{0,127}$"


class LocalTokenRequest(BaseModel):
    """Which demo user to sign in as (embedded default only)."""

    model_config = ConfigDict(extra="forbid")

    uid: str = Field(
        pattern=LOCAL_UID_PATTERN,
        description="a stored user id: letters, digits and . _ @ + - (not first: .)",
    )


async def _after(finish: BackgroundTask | None, done: Callable[[], None]) -> None:
    """A streamed answer is over: close its upstream, then say so."""
    try:
        if finish is not None:
            await finish()
    finally:
        done()


def _page(name: str) -> FileResponse:
    return FileResponse(WEBCHAT_DIR / name, headers=PAGE_HEADERS, media_type="text/html")


def install_web(app: FastAPI, settings: ChatSettings) -> None:
    """Add the pages, the widget, sign-in and the proxy to the chatbot app."""
    router = APIRouter(include_in_schema=False)
    local = settings.provider != "gcp"

    @router.get("/")
    def index() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @router.get("/dashboard")
    def dashboard() -> FileResponse:
        return _page("dashboard.html")

    @router.get("/signin")
    def signin() -> FileResponse:
        return _page("signin.html")

    @router.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @router.get("/widget.js")
    def widget() -> FileResponse:
        return FileResponse(WEBCHAT_DIR / "widget.js", media_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})  # fmt: skip

    @router.get("/auth/config")
    def auth_config() -> dict[str, Any]:
        if local:
            return {"mode": "local"}
        return {
            "mode": "firebase",
            "providers": list(settings.firebase_sign_in_providers),
            "firebase": {
                "apiKey": settings.firebase_web_api_key,
                "authDomain": settings.firebase_auth_domain,
                "projectId": settings.firebase_project_id,
            },
        }

    if local:
        _install_local_sign_in(router, settings)

    @router.api_route("/api/v1/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def proxy(path: str, request: Request) -> Response:
        if path.endswith("/events"):
            return await _stream_slot(request, path)
        return await _forward(request, path, request.app.state.proxy, lambda: None)

    async def _stream_slot(request: Request, path: str) -> Response:
        open_streams: Counter[str] = request.app.state.open_streams
        caller = hashlib.sha256(request.headers.get("authorization", "").encode()).hexdigest()
        if open_streams[caller] >= MAX_STREAMS_PER_CALLER:
            return problem(
                429, f"at most {MAX_STREAMS_PER_CALLER} event streams at once; close one first"
            )
        open_streams[caller] += 1

        def release() -> None:
            open_streams[caller] -= 1
            if open_streams[caller] <= 0:
                del open_streams[caller]

        return await _forward(request, path, request.app.state.stream_proxy, release)

    async def _forward(
        request: Request, path: str, client: httpx.AsyncClient, done: Callable[[], None]
    ) -> Response:
        """Send the request on; `done` runs once the answer (a stream's too) is over."""
        try:
            response = await _relay(request, path, client)
        except BaseException:
            done()
            raise
        if isinstance(response, StreamingResponse):
            finish = response.background
            response.background = BackgroundTask(_after, finish, done)
        else:
            done()
        return response

    async def _relay(request: Request, path: str, client: httpx.AsyncClient) -> Response:
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
            return problem(400, "the path holds a control character (such as %00); remove it")
        if any(segment in (".", "..") for segment in path.split("/")):
            # httpx resolves dot segments: /api/v1/%2e%2e/healthz would leave /v1/.
            return problem(404, "the path holds a '.' or '..' segment; the API has none")
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
        # A body passes through as it arrives (a site import can be gigabytes), with its
        # length, so the control plane judges its size limit before reading it.
        length = request.headers.get("content-length")
        has_body = (length is not None and length != "0") or "transfer-encoding" in request.headers
        if length is not None:
            headers["content-length"] = length
        outgoing = client.build_request(
            request.method, f"/v1/{path}", params=request.query_params,
            content=request.stream() if has_body else b"", headers=headers,
        )  # fmt: skip
        try:
            upstream = await client.send(outgoing, stream=True)
        except httpx.HTTPError:
            return problem(502, "the control plane is unreachable; try again shortly")
        kept = {k: v for k, v in upstream.headers.items() if k.lower() in RETURNED_HEADERS}
        streamed = upstream.headers.get("content-type", "").startswith("text/event-stream")
        if streamed:
            kept["Cache-Control"] = "no-cache"
        if streamed or upstream.headers.get("content-disposition", "").startswith("attachment"):
            # Server-Sent Events pass through as they come (an operation's steps, live), and
            # so does a download (a backup can be larger than this service's memory).
            return StreamingResponse(
                upstream.aiter_raw(), status_code=upstream.status_code, headers=kept,
                background=BackgroundTask(upstream.aclose),
            )  # fmt: skip
        try:
            content = await upstream.aread()
        except httpx.HTTPError:
            return problem(502, "the control plane broke off its answer; try again shortly")
        finally:
            await upstream.aclose()
        return Response(content, status_code=upstream.status_code, headers=kept)

    app.include_router(router)
    app.mount("/webchat", StaticFiles(directory=WEBCHAT_DIR), name="webchat")


def _install_local_sign_in(router: APIRouter, settings: ChatSettings) -> None:
    """The embedded default's demo sign-in: it lists the stored users and mints their
    tokens, for callers that present the machine's sign-in key (root-only, under the keys
    directory; `aipress up` and `aipress signin-url` print the URL that carries it). Code
    on this machine, a site's PHP included, sets the Host header at will: the key is what
    it cannot get. This does not exist in gcp mode."""

    loopback = {"127.0.0.1", "localhost", "::1", settings.chat_host}
    load_sign_in_key(settings)  # made once, so the URL can be printed before a first visit

    def require_loopback(request: Request) -> None:
        # A web page the operator visits could reach this service through DNS rebinding
        # (its own name resolving to 127.0.0.1): the Host header still names that page.
        if request.url.hostname not in loopback:
            raise HTTPException(403, "local sign-in answers on loopback names only")
        presented = request.headers.get(SIGN_IN_KEY_HEADER)
        if not presented:
            raise HTTPException(
                401,
                "local sign-in needs this machine's sign-in key: open the sign-in URL that "
                "`aipress up` printed, or print it again with `aipress signin-url` (as root)",
            )
        if not sign_in_key_matches(settings, presented):
            raise HTTPException(
                403,
                "this is not the machine's sign-in key (it may have been rotated): get the "
                "current sign-in URL with `aipress signin-url` (as root)",
            )

    def admin_client() -> httpx.Client:
        token = LocalTokenIssuer(settings).issue("chatbot-signin", Role.ADMIN, ttl_seconds=60)
        return httpx.Client(base_url=settings.tools_base_url, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    @router.get("/auth/local/users", dependencies=[Depends(require_loopback)])
    def local_users() -> list[dict[str, Any]]:
        with admin_client() as client:
            users: list[dict[str, Any]] = client.get("/v1/users").raise_for_status().json()
        return [{k: u[k] for k in ("uid", "role", "tenants", "email")} for u in users]

    @router.post("/auth/local/token", dependencies=[Depends(require_loopback)])
    def local_token(body: LocalTokenRequest) -> JSONResponse:
        with admin_client() as client:
            found = client.get(f"/v1/users/{quote(body.uid, safe='')}")
        if found.status_code == 404:
            return problem(404, f"no local user {body.uid!r}; see `aipress users list`")
        user = found.raise_for_status().json()
        token = LocalTokenIssuer(settings).issue(
            user["uid"], Role(user["role"]), user["tenants"], email=user.get("email")
        )
        return JSONResponse({"token": token})
