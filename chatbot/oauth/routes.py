"""The authorization server's endpoints: RFC 8414 metadata, /oauth/authorize (the demo
sign-in page is its login and consent), the consent answer, and /oauth/token."""

from __future__ import annotations

from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from chatbot.oauth.clients import ClientDirectory, LookupsBusy, UnknownClient
from chatbot.oauth.grants import (
    CHALLENGE_PATTERN,
    CODE_TTL_SECONDS,
    REQUEST_KEY_LABEL,
    REQUEST_TTL_SECONDS,
    AuthorizationCode,
    AuthorizationCodes,
    AuthorizationRequest,
    PendingRequests,
    verifier_matches,
)
from chatbot.oauth.onetime import OneTimeRecords
from chatbot.oauth.scopes import (
    ROLE_SCOPES,
    SCOPES,
    InvalidScope,
    grant,
    parse_scope,
    scope_string,
)
from chatbot.oauth.tokens import McpTokenIssuer
from controlplane.kernel.auth import InvalidToken, TokenVerifier
from controlplane.kernel.identity import InvalidClaims, Principal
from controlplane.kernel.problems import problem
from controlplane.kernel.secret_record import note_secret

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path)
REQUESTS_PATH = "/oauth/requests"
METADATA_PATH = "/.well-known/oauth-authorization-server"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
SUBJECT_TOKEN_TYPES = (
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:jwt",
)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# A token request is a few short parameters; the endpoint needs no sign-in, so nothing
# bigger (and no multipart upload, which is spooled to disk) is read.
TOKEN_BODY_LIMIT = 16 * 1024
CONSENT_BODY_LIMIT = 1024
FORM_TYPE = "application/x-www-form-urlencoded"


class ConsentAnswer(BaseModel):
    """The signed-in user's answer to a client's authorization request."""

    # Strict: consent is the JSON `true`, never a string pydantic would read as one ("y").
    model_config = ConfigDict(extra="forbid", strict=True)

    approve: bool


class TokenError(Exception):
    """An RFC 6749 §5.2 error answer of the token endpoint."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def with_query(uri: str, params: dict[str, str | None]) -> str:
    """`uri` with `params` added to its query (None values left out)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


class AuthorizationServer:
    """The embedded authorization server for one resource (the MCP URL)."""

    def __init__(self, issuer: str, resource: str, tokens: McpTokenIssuer,
                 clients: ClientDirectory, records: OneTimeRecords) -> None:  # fmt: skip
        self.issuer = issuer
        self.resource = resource
        self.tokens = tokens
        self.clients = clients
        self._records = records
        self.codes = AuthorizationCodes(records, CODE_TTL_SECONDS)

    @cached_property
    def requests(self) -> PendingRequests:
        """Pending requests, signed with a key derived from the signing key (read on first
        use, as the token issuer reads it)."""
        key = self.tokens.derived_key(REQUEST_KEY_LABEL)
        return PendingRequests(REQUEST_TTL_SECONDS, key, self._records)

    def metadata(self) -> dict[str, Any]:
        """The Authorization Server Metadata document (RFC 8414 §2)."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + AUTHORIZE_PATH,
            "token_endpoint": self.issuer + TOKEN_PATH,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", TOKEN_EXCHANGE],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": list(SCOPES),
            "client_id_metadata_document_supported": True,
            "authorization_response_iss_parameter_supported": True,
        }

    def authorize(self, params: dict[str, str]) -> RedirectResponse | JSONResponse:
        """Validate an authorization request; send the browser to sign in, or back with an
        error (only ever to a redirect URI the client registered)."""
        client_id = params.get("client_id", "")
        if not client_id:
            return problem(400, "client_id is required")
        try:
            client = self.clients.resolve(client_id)
        except LookupsBusy as exc:
            busy = problem(503, str(exc))
            busy.headers["Retry-After"] = "5"
            return busy
        except UnknownClient as exc:
            return problem(400, str(exc))
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return problem(
                400, "redirect_uri must be exactly one of the client's registered redirect URIs"
            )
        state = params.get("state")

        def back(error: str, description: str) -> RedirectResponse | JSONResponse:
            if not client.registered:
                # RFC 9700 §4.11.2: redirecting at once, before the user saw anything, would
                # make this address a bouncer to wherever a stranger's document points.
                return problem(400, f"the authorization request was refused ({error}): "
                               f"{description}", error=error)  # fmt: skip
            return self._back(redirect_uri, state, error=error, error_description=description)

        if params.get("response_type") != "code":
            return back("unsupported_response_type", "only response_type=code is supported")
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not CHALLENGE_PATTERN.fullmatch(
            challenge
        ):
            return back(
                "invalid_request",
                "PKCE is required: code_challenge with code_challenge_method=S256",
            )
        if params.get("resource") != self.resource:
            return back("invalid_target", f"the resource parameter must be {self.resource}")
        try:
            scopes = parse_scope(params.get("scope"))
        except InvalidScope as exc:
            return back("invalid_scope", str(exc))
        request = AuthorizationRequest(client, redirect_uri, state, challenge, self.resource,
                                       scopes)  # fmt: skip
        request_id = self.requests.put(request)
        return RedirectResponse(f"/signin?{urlencode({'oauth': request_id})}", status_code=302)

    def _back(self, redirect_uri: str, state: str | None, **params: str) -> RedirectResponse:
        url = with_query(redirect_uri, {**params, "state": state, "iss": self.issuer})
        return RedirectResponse(url, status_code=302)

    def describe(
        self, request_id: str, principal: Principal | None = None
    ) -> JSONResponse | dict[str, Any]:
        """What the consent page shows about a pending request; for a signed-in `principal`
        also which scopes their role lets it grant and which it drops."""
        request = self.requests.peek(request_id)
        if request is None:
            return problem(404, "this authorization request expired or was answered; start again")
        asked = [s for s in SCOPES if s in request.scopes]
        described: dict[str, Any] = {
            "client_id": request.client.client_id,
            "client_name": request.client.name,
            "redirect_host": _host_of(request.redirect_uri),
            "scopes": asked,
        }
        if principal is not None:
            held = ROLE_SCOPES[principal.role]
            described |= {"role": principal.role.value,
                          "granted": [s for s in asked if s in held],
                          "dropped": [s for s in asked if s not in held]}  # fmt: skip
        return described

    def consent(self, request_id: str, principal: Principal, approve: bool) -> dict[str, str]:
        """Answer a pending request for the signed-in `principal`: the URL to send them to."""
        request = self.requests.take(request_id, principal.key)  # OverflowError: too many
        if request is None:
            raise LookupError("this authorization request expired or was answered; start again")
        if not approve:
            denied = self._back(request.redirect_uri, request.state, error="access_denied",
                                error_description="the user declined")  # fmt: skip
            return {"redirect": denied.headers["location"]}
        try:
            scopes = grant(request.scopes, principal.role)
        except InvalidScope as exc:
            refused = self._back(request.redirect_uri, request.state, error="invalid_scope",
                                 error_description=str(exc))  # fmt: skip
            return {"redirect": refused.headers["location"]}
        try:
            code = self.codes.put(
                AuthorizationCode(request.client.client_id, request.redirect_uri,
                                  request.code_challenge, request.resource, scopes, principal)
            )  # fmt: skip
        except OverflowError as exc:
            busy = self._back(
                request.redirect_uri, request.state,
                error="temporarily_unavailable", error_description=str(exc),
            )  # fmt: skip
            return {"redirect": busy.headers["location"]}
        note_secret(code, "oauth authorization code")
        done = self._back(request.redirect_uri, request.state, code=code)
        return {"redirect": done.headers["location"]}

    def redeem(self, form: dict[str, str]) -> dict[str, Any]:
        """The authorization_code grant: a code, its PKCE verifier -> an access token."""
        code = self.codes.take(form.get("code", ""))  # taken first: one attempt per code
        if code is None:
            raise TokenError("invalid_grant", "the code is unknown, expired or already used")
        if form.get("client_id") != code.client_id:
            raise TokenError("invalid_grant", "the code was issued to another client_id")
        if form.get("redirect_uri") != code.redirect_uri:
            raise TokenError("invalid_grant", "redirect_uri differs from the authorization's")
        if not verifier_matches(form.get("code_verifier", ""), code.code_challenge):
            raise TokenError("invalid_grant", "code_verifier does not match the code_challenge")
        if form.get("resource", code.resource) != code.resource:
            raise TokenError("invalid_target", f"the code is for the resource {code.resource}")
        return self._token(code.principal, code.scopes, code.client_id)

    def exchange(self, form: dict[str, str], verifier: TokenVerifier) -> dict[str, Any]:
        """RFC 8693 token exchange: a verified sign-in token (a Firebase ID token in gcp
        mode) for an access token bound to this resource."""
        if form.get("subject_token_type") not in SUBJECT_TOKEN_TYPES:
            kinds = ", ".join(SUBJECT_TOKEN_TYPES)
            raise TokenError("invalid_request", f"subject_token_type must be one of {kinds}")
        if form.get("resource") != self.resource:
            raise TokenError("invalid_target", f"the resource parameter must be {self.resource}")
        client_id = form.get("client_id", "")
        try:
            # The sign-in token first: a stranger without one never has a client looked up.
            principal = verifier.verify(form.get("subject_token", ""))
            self.clients.resolve(client_id)
            scopes = grant(parse_scope(form.get("scope")), principal.role)
        except LookupsBusy as exc:
            raise TokenError("temporarily_unavailable", str(exc), status=503) from exc
        except UnknownClient as exc:
            raise TokenError("invalid_client", str(exc), status=401) from exc
        except (InvalidToken, InvalidClaims) as exc:
            raise TokenError("invalid_grant", f"subject_token refused: {exc}") from exc
        except InvalidScope as exc:
            raise TokenError("invalid_scope", str(exc)) from exc
        answer = self._token(principal, scopes, client_id)
        return answer | {"issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}

    def _token(
        self, principal: Principal, scopes: frozenset[str], client_id: str
    ) -> dict[str, Any]:
        token = self.tokens.issue(principal, scopes, client_id, self.resource)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.tokens.ttl,
                "scope": scope_string(scopes)}  # fmt: skip


def _host_of(uri: str) -> str:
    """The host (and port) a redirect URI sends the answer to, never its user@ part."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port}" if parts.port else host


async def capped_body(request: Request, limit: int) -> bytes | None:
    """The request's body, read no further than `limit` bytes (None: it is longer)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body


async def token_form(request: Request) -> dict[str, str]:
    """The token request's parameters (RFC 6749 §3.2: urlencoded, each at most once), read
    no further than TOKEN_BODY_LIMIT bytes; TokenError says what to fix."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM_TYPE:
        raise TokenError("invalid_request", f"send the token request as {FORM_TYPE}")
    body = await capped_body(request, TOKEN_BODY_LIMIT)
    if body is None:
        too_big = f"the token request is over {TOKEN_BODY_LIMIT} bytes"
        raise TokenError("invalid_request", too_big, status=413)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TokenError("invalid_request", "the token request is not a UTF-8 form") from exc
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TokenError("invalid_request",
                         f"give each parameter once; repeated: {', '.join(repeated)}")  # fmt: skip
    return dict(pairs)


def _signed_in(request: Request) -> Principal:
    """The user the consent page signed in (its sign-in token, local or Firebase)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("sign in first: the consent answer carries your sign-in token")
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(token)


def authorization_server_router(server: AuthorizationServer) -> APIRouter:
    """The authorization server's routes."""
    router = APIRouter(include_in_schema=False)

    @router.get(METADATA_PATH)
    def authorization_server_metadata() -> dict[str, Any]:
        return server.metadata()

    @router.get(AUTHORIZE_PATH, response_model=None)
    async def authorize(request: Request) -> RedirectResponse | JSONResponse:
        repeated = sorted({k for k, _ in request.query_params.multi_items()
                           if len(request.query_params.getlist(k)) > 1})  # fmt: skip
        if repeated:  # RFC 6749 §3.1: each parameter at most once, or which one counts?
            return problem(400, f"give each parameter once; repeated: {', '.join(repeated)}")
        params = dict(request.query_params)
        return await run_in_threadpool(server.authorize, params)

    @router.get(REQUESTS_PATH + "/{request_id}", response_model=None)
    def describe(request_id: str, request: Request) -> JSONResponse | dict[str, Any]:
        # Signed in (the consent page after sign-in): what this user's role grants of it.
        signed_in = _signed_in(request) if "authorization" in request.headers else None
        return server.describe(request_id, signed_in)

    @router.post(REQUESTS_PATH + "/{request_id}", response_model=None)
    async def consent(request_id: str, request: Request) -> JSONResponse:
        # Signed in before the body is read: a stranger's body is never parsed.
        principal = await run_in_threadpool(_signed_in, request)
        raw = await capped_body(request, CONSENT_BODY_LIMIT)
        if raw is None:
            return problem(413, f"the answer is over {CONSENT_BODY_LIMIT} bytes")
        try:
            body = ConsentAnswer.model_validate_json(raw)
        except ValidationError:
            return problem(422, 'send the answer as JSON: {"approve": true} or {"approve": false}')
        try:
            answer = await run_in_threadpool(server.consent, request_id, principal, body.approve)
        except LookupError as exc:
            return problem(404, str(exc))
        except OverflowError as exc:  # before the request was taken: it can be answered later
            return problem(429, str(exc))
        return JSONResponse(answer, headers=NO_STORE)

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        try:
            form = await token_form(request)
            if form.get("grant_type") == "authorization_code":
                answer = await run_in_threadpool(server.redeem, form)
            elif form.get("grant_type") == TOKEN_EXCHANGE:
                answer = await run_in_threadpool(server.exchange, form, request.app.state.verifier)
            else:
                kinds = f"authorization_code or {TOKEN_EXCHANGE}"
                raise TokenError("unsupported_grant_type", f"grant_type must be {kinds}")
        except TokenError as exc:
            body = {"error": exc.error, "error_description": exc.description}
            return JSONResponse(body, status_code=exc.status, headers=NO_STORE)
        return JSONResponse(answer, headers=NO_STORE)

    return router
