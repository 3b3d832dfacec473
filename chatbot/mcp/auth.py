"""The MCP endpoint as an OAuth 2.1 resource server: who is calling, with which scopes, and
the control-plane token the tools use on their behalf (never the MCP token itself)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from chatbot.oauth.clients import ClientDirectory
from chatbot.oauth.control_plane import ControlPlaneTokens, control_plane_tokens
from chatbot.oauth.onetime import OneTimeRecords
from chatbot.oauth.routes import AuthorizationServer, authorization_server_router
from chatbot.oauth.scopes import SCOPES
from chatbot.oauth.tokens import McpTokenIssuer, RefusedToken
from chatbot.settings import ChatSettings
from controlplane.kernel.identity import Principal

__all__ = [
    "SCOPES",
    "McpAuthError",
    "McpCaller",
    "authenticate",
    "control_plane_token",
    "install_mcp_auth",
    "insufficient_scope",
    "protected_resource_metadata_router",
]

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource" + MCP_PATH
# RFC 6750 §2.3 names `access_token`; `token` and `t` are how some MCP hosts hand tokens out.
QUERY_TOKEN_NAMES = ("access_token", "token", "t")
SCOPE_KEY = "aipress.mcp_auth"


class McpAuthError(Exception):
    """A refused MCP request: its status, its WWW-Authenticate challenge and what to fix."""

    def __init__(self, status: int, www_authenticate: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.www_authenticate = www_authenticate
        self.detail = detail


@dataclass(frozen=True)
class McpCaller:
    """A verified MCP caller: the user, the scopes the token holds, and the OAuth client."""

    principal: Principal
    scopes: frozenset[str]
    client_id: str
    auth: McpAuth | None = field(default=None, compare=False, repr=False)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def challenge(error: str | None = None, description: str | None = None, **params: str) -> str:
    """A `Bearer` WWW-Authenticate value (RFC 6750 §3) with the given parameters."""
    pairs = {"error": error, "error_description": description, **params}
    return "Bearer " + ", ".join(
        f'{name}="{_quoted(value)}"' for name, value in pairs.items() if value is not None
    )


class McpAuth:
    """The resource server's state: its URL, its metadata URL and the token issuer."""

    def __init__(self, settings: ChatSettings) -> None:
        self.settings = settings
        # Codes, answered consent requests and confirmation ids, shared by every instance.
        self.records = OneTimeRecords(settings.chat_checkpoint_url)
        self.resource = settings.chat_origin + MCP_PATH
        self.metadata_url = settings.chat_origin + METADATA_PATH
        self.tokens = McpTokenIssuer(settings)

    @cached_property
    def control_plane(self) -> ControlPlaneTokens:
        """Where control-plane tokens come from (built on first use)."""
        return control_plane_tokens(self.settings)

    def refuse(self, status: int, error: str | None, detail: str) -> McpAuthError:
        """A refusal whose challenge points a client at the resource metadata."""
        www = challenge(error, detail if error else None, resource_metadata=self.metadata_url)
        return McpAuthError(status, www, detail)

    def authenticate(self, request: Request) -> McpCaller:
        """The caller of `request`, from its `Authorization: Bearer` header only."""
        in_query = [name for name in QUERY_TOKEN_NAMES if name in request.query_params]
        if in_query:
            raise self.refuse(
                400, "invalid_request",
                f"an access token in the query string ({in_query[0]}=) is refused: send it "
                "in the Authorization header as 'Bearer <token>'",
            )  # fmt: skip
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise self.refuse(
                401, None, f"this resource needs an OAuth access token; see {self.metadata_url}"
            )
        if scheme.lower() != "bearer" or not token.strip():
            raise self.refuse(
                401, "invalid_request", "the Authorization header must be 'Bearer <token>'"
            )
        try:
            verified = self.tokens.verify(token.strip(), self.resource)
        except RefusedToken as exc:
            raise self.refuse(401, "invalid_token", str(exc)) from exc
        return McpCaller(verified.principal, verified.scopes, verified.client_id, self)

    def control_plane_token(self, caller: McpCaller) -> str:
        """A short-lived control-plane token for the caller's user (never the MCP token)."""
        return self.control_plane.token_for(caller.principal, caller.client_id)

    def metadata(self) -> dict[str, Any]:
        """The Protected Resource Metadata document (RFC 9728 §2)."""
        return {
            "resource": self.resource,
            "authorization_servers": [self.settings.chat_origin],
            "scopes_supported": list(SCOPES),
            "bearer_methods_supported": ["header"],
            "resource_name": "AIPress MCP server",
        }


class _ScopeAuth:
    """Puts the McpAuth in each request's scope, so a mounted sub-app finds it too."""

    def __init__(self, app: ASGIApp, auth: McpAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[SCOPE_KEY] = self.auth
        await self.app(scope, receive, send)


def _auth_of(request: Request) -> McpAuth:
    auth = request.scope.get(SCOPE_KEY)
    if not isinstance(auth, McpAuth):
        raise RuntimeError("install_mcp_auth(app, settings) was not called on this app")
    return auth


def authenticate(request: Request) -> McpCaller:
    """The verified caller of an MCP request, or McpAuthError (401/400 with a challenge)."""
    return _auth_of(request).authenticate(request)


def insufficient_scope(required: str) -> McpAuthError:
    """403 for a token that lacks `required` (RFC 6750 §3.1 `insufficient_scope`)."""
    detail = f"this tool needs the {required} scope; authorize again asking for it"
    return McpAuthError(403, challenge("insufficient_scope", detail, scope=required), detail)


def control_plane_token(caller: McpCaller) -> str:
    """A short-lived token for the control plane, derived for the caller's user."""
    if caller.auth is None:
        raise RuntimeError("this McpCaller did not come from authenticate()")
    return caller.auth.control_plane_token(caller)


def protected_resource_metadata_router(auth: McpAuth) -> APIRouter:
    """The RFC 9728 document at /.well-known/oauth-protected-resource/mcp."""
    router = APIRouter(include_in_schema=False)

    @router.get(METADATA_PATH)
    def protected_resource_metadata() -> dict[str, Any]:
        return auth.metadata()

    return router


def install_mcp_auth(app: FastAPI, settings: ChatSettings) -> McpAuth:
    """Add the resource metadata and the authorization server, and make `authenticate`
    work for requests to `app`."""
    auth = McpAuth(settings)
    app.include_router(protected_resource_metadata_router(auth))
    server = AuthorizationServer(settings.chat_origin, auth.resource, auth.tokens,
                                 ClientDirectory(settings), auth.records)  # fmt: skip
    app.include_router(authorization_server_router(server))
    app.add_middleware(_ScopeAuth, auth=auth)
    return auth
