"""The chatbot service (FastAPI on 127.0.0.1:8001): HTTP chat, resume, and a WebSocket that
streams tokens, tool steps, provisioning progress and confirmations."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from chatbot.conversation import (
    Busy,
    ChatEngine,
    Event,
    NothingToResume,
    SecretRefused,
    TenantMismatch,
)
from chatbot.limits import RateLimited, RateLimiter, TooLong, check_length
from chatbot.mcp.auth import install_mcp_auth
from chatbot.mcp.server import install_mcp
from chatbot.settings import ChatSettings, get_chat_settings
from chatbot.store import ThreadNotFound
from chatbot.upstream import ServiceIdentity, async_client
from chatbot.web import install_web
from controlplane.kernel.auth import InvalidToken, TokenVerifier, make_verifier
from controlplane.kernel.identity import Principal
from controlplane.kernel.logs import configure_logging, current_request_id, get_logger
from controlplane.kernel.problems import install_problem_handlers, problem
from controlplane.kernel.request_id import RequestIdMiddleware
from controlplane.kernel.vocabulary import as_json as vocabulary_json
from tools.context import AgentContext
from tools.registry import catalogue

log = get_logger("aipress.chat")
WS_AUTH_TIMEOUT = 10.0


class ChatRequest(BaseModel):
    """A user's message; without thread_id a new thread starts."""

    model_config = ConfigDict(extra="forbid")

    thread_id: str | None = Field(default=None, max_length=64)
    message: str = Field(min_length=1, description="What the user typed")
    tenant_id: str | None = Field(
        default=None, description="For operators/viewers with several tenants: which one"
    )


class ResumeRequest(BaseModel):
    """The answer to a confirmation."""

    model_config = ConfigDict(extra="forbid")

    approve: bool
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        max_length=20,
        description="The values the confirmation asks for (its actions with input 'secret'), "
        "by tool_call_id: sent to the control plane only, never to the model or the thread",
    )
    uploads: dict[str, str] = Field(
        default_factory=dict,
        max_length=20,
        description="The import operations the card's uploads started (its actions with "
        "input 'file'), by tool_call_id; the file went to the import endpoint, not here",
    )


class ChatReply(BaseModel):
    """The new messages of a turn and, if it paused, what needs confirming."""

    thread_id: str
    messages: list[dict[str, Any]]
    interrupt: dict[str, Any] | None = None


class ThreadRead(BaseModel):
    """A thread of the caller."""

    id: str
    title: str
    tenant_id: str | None
    created_at: str
    updated_at: str


class Caller(BaseModel):
    """The verified caller and the raw token the tools forward."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    principal: Principal
    token: str = Field(repr=False)


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("send 'Authorization: Bearer <token>' (get one with `aipress token`)")
    return token.strip()


async def get_caller(request: Request) -> Caller:
    """The caller, from the same bearer tokens the control plane takes."""
    token = _bearer(request.headers.get("authorization", ""))
    verifier: TokenVerifier = request.app.state.verifier
    return Caller(principal=verifier.verify(token), token=token)


CallerDep = Annotated[Caller, Depends(get_caller)]


def _engine(request: Request) -> ChatEngine:
    engine: ChatEngine = request.app.state.engine
    return engine


def create_app(
    settings: ChatSettings | None = None,
    *,
    model: BaseChatModel | None = None,
    verifier: TokenVerifier | None = None,
    identity: ServiceIdentity | None = None,
) -> FastAPI:
    """The chatbot application."""
    settings = settings or get_chat_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_file, json=settings.log_json)
        app.state.engine = ChatEngine(settings, model, identity)
        app.state.verifier = verifier or make_verifier(settings)
        app.state.limiter = RateLimiter(settings.chat_rate_per_minute)
        app.state.proxy = async_client(settings, app.state.engine.identity, timeout=60)
        # Event streams stay open for as long as a page is shown: they get their own
        # connections, so open streams never hold up anyone's ordinary calls.
        app.state.stream_proxy = async_client(
            settings, app.state.engine.identity, timeout=60, max_connections=500
        )
        app.state.open_streams = Counter()
        log.info("chat.started", model=settings.chat_model_name, port=settings.chat_port)
        async with app.state.mcp.running():
            yield
        await app.state.proxy.aclose()
        await app.state.stream_proxy.aclose()
        app.state.engine.close()
        mcp_auth.records.close()

    app = FastAPI(
        title="AIPress chat",
        version="1",
        lifespan=lifespan,
        description="Chat with the AIPress operations agent (same bearer tokens as the API).",
        redirect_slashes=False,  # its redirect copies the Host header into Location
    )
    app.add_middleware(RequestIdMiddleware)

    install_problem_handlers(app)
    _install_chat_errors(app)
    install_web(app, settings)
    mcp_auth = install_mcp_auth(app, settings)
    install_mcp(app, settings, mcp_auth.records)
    if settings.chat_allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.chat_allowed_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/tools")
    async def tools() -> list[dict[str, Any]]:
        """Every tool of the agent: name, description and the widget's label (no secrets)."""
        return catalogue()

    @app.get("/v1/vocabulary")
    async def vocabulary() -> dict[str, Any]:
        """The operation words the widget and dashboard show (the control plane's own)."""
        return vocabulary_json()

    @app.post("/v1/chat", response_model=ChatReply)
    def chat(body: ChatRequest, caller: CallerDep, request: Request) -> ChatReply:
        """Send a message; the reply carries the new messages and any pending confirmation."""
        engine = _engine(request)
        _admit(request, caller, body.message)
        ctx = _context(engine, caller, body.tenant_id)
        thread_id = engine.open_thread(ctx, body.thread_id, body.message)
        return _collect(thread_id, engine.turn(ctx, thread_id, message=body.message))

    @app.post("/v1/chat/{thread_id}/resume", response_model=ChatReply)
    def resume(
        thread_id: str, body: ResumeRequest, caller: CallerDep, request: Request
    ) -> ChatReply:
        """Answer a confirmation (approve or cancel) and let the turn finish."""
        engine = _engine(request)
        _admit(request, caller, "")
        thread = engine.threads.get(thread_id, owner_key=caller.principal.key)
        ctx = _context(engine, caller, thread.tenant_id)
        secrets = {k: v.get_secret_value() for k, v in body.secrets.items()}
        turn = engine.turn(ctx, thread_id, approve=body.approve, secrets=secrets,
                           uploads=body.uploads)  # fmt: skip
        return _collect(thread_id, turn)

    @app.get("/v1/chat/threads", response_model=list[ThreadRead])
    def threads(caller: CallerDep, request: Request) -> list[ThreadRead]:
        """The caller's own threads, latest first."""
        return [
            ThreadRead(id=t.id, title=t.title, tenant_id=t.tenant_id,
                       created_at=t.created_at.isoformat(), updated_at=t.updated_at.isoformat())
            for t in _engine(request).threads.list(owner_key=caller.principal.key)
        ]  # fmt: skip

    @app.get("/v1/chat/{thread_id}", response_model=ChatReply)
    def thread(thread_id: str, caller: CallerDep, request: Request) -> ChatReply:
        """A thread's messages and pending confirmation (only its owner may read it)."""
        engine = _engine(request)
        engine.threads.get(thread_id, owner_key=caller.principal.key)
        return ChatReply(
            thread_id=thread_id,
            messages=engine.history(thread_id),
            interrupt=engine.pending_interrupt(thread_id),
        )

    @app.websocket("/v1/chat/ws")
    async def chat_ws(websocket: WebSocket) -> None:
        """Frames in: {type: auth, token}, {type: message, text, thread_id?},
        {type: resume, thread_id, approve, secrets?, uploads?}. Frames out: the turn's events, or
        {type: error, status, detail}."""
        await websocket.accept()
        caller = await _ws_auth(websocket)
        if caller is None:
            return
        try:
            while True:
                frame = await websocket.receive_json()
                await _ws_frame(websocket, caller, frame)
        except WebSocketDisconnect:
            return

    return app


# What each chat failure answers, over HTTP (problem+json) and over the WebSocket alike.
CHAT_ERRORS: tuple[tuple[type[Exception], int], ...] = (
    (RateLimited, 429),
    (TooLong, 413),
    (ThreadNotFound, 404),
    (Busy, 409),
    (NothingToResume, 409),
    (TenantMismatch, 409),
    (PermissionError, 403),
    (SecretRefused, 422),  # or the control plane's own status
)
CHAT_ERROR_TYPES = tuple(cls for cls, _ in CHAT_ERRORS)


def _status_of(exc: Exception) -> int:
    if isinstance(exc, SecretRefused):
        return exc.status
    return next(status for cls, status in CHAT_ERRORS if isinstance(exc, cls))


def _install_chat_errors(app: FastAPI) -> None:
    async def _chat_error(_request: Request, exc: Exception) -> JSONResponse:
        response = problem(_status_of(exc), str(exc))
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    for cls in CHAT_ERROR_TYPES:
        app.add_exception_handler(cls, _chat_error)


def _admit(request: Request, caller: Caller, message: str) -> None:
    """Length first (a refused message is not counted), then the rate."""
    check_length(message, request.app.state.engine.settings.chat_max_message_chars)
    limiter: RateLimiter = request.app.state.limiter
    limiter.hit(caller.principal.key)


def _context(engine: ChatEngine, caller: Caller, tenant_id: str | None) -> AgentContext:
    return engine.context(
        caller.principal, caller.token, tenant_id=tenant_id, request_id=current_request_id()
    )


def _collect(thread_id: str, events: Iterator[Event]) -> ChatReply:
    messages: list[dict[str, Any]] = []
    interrupt = None
    for event in events:
        if event["type"] == "message":
            messages.append(event["message"])
        elif event["type"] == "tool_end":
            messages.append({"role": "tool", "tool_call_id": event["id"], "name": event["name"],
                             "status": event["status"], "error": event["error"],
                             "data": event["data"]})  # fmt: skip
        elif event["type"] == "interrupt":
            interrupt = event
    return ChatReply(thread_id=thread_id, messages=messages, interrupt=interrupt)


# -- WebSocket ---------------------------------------------------------------------------


async def _ws_auth(websocket: WebSocket) -> Caller | None:
    """The first frame (or an Authorization header) carries the token; never the URL."""
    verifier: TokenVerifier = websocket.app.state.verifier
    header = websocket.headers.get("authorization")
    try:
        if header:
            token = _bearer(header)
        else:
            frame = await asyncio.wait_for(websocket.receive_json(), WS_AUTH_TIMEOUT)
            if not isinstance(frame, dict) or frame.get("type") != "auth" or not frame.get("token"):
                raise InvalidToken('send {"type": "auth", "token": "<bearer token>"} first')
            token = str(frame["token"])
        caller = Caller(principal=verifier.verify(token), token=token)
    except (InvalidToken, TimeoutError, ValueError) as exc:
        detail = str(exc) or "authentication timed out"
        with contextlib.suppress(Exception):
            await websocket.send_json({"type": "error", "status": 401, "detail": detail})
            await websocket.close(code=4401)
        return None
    await websocket.send_json({"type": "ready", "sub": caller.principal.sub,
                               "role": caller.principal.role.value})  # fmt: skip
    return caller


async def _ws_frame(websocket: WebSocket, caller: Caller, frame: Any) -> None:
    engine: ChatEngine = websocket.app.state.engine
    limiter: RateLimiter = websocket.app.state.limiter
    kind = frame.get("type") if isinstance(frame, dict) else None
    try:
        if kind == "message":
            text = frame.get("text")
            if not isinstance(text, str) or not text.strip():
                raise ValueError("a message frame needs a non-empty 'text'")
            tenant_id, thread_id = _text_field(frame, "tenant_id"), _text_field(frame, "thread_id")
            check_length(text, engine.settings.chat_max_message_chars)
            limiter.hit(caller.principal.key)
            ctx = _context(engine, caller, tenant_id)
            thread_id = await run_in_threadpool(engine.open_thread, ctx, thread_id, text)
            await _relay(websocket, engine.turn(ctx, thread_id, message=text))
        elif kind == "resume":
            thread_id = str(frame.get("thread_id") or "")
            secrets, uploads = _secrets_field(frame), _uploads_field(frame)  # the frame first
            limiter.hit(caller.principal.key)
            thread = await run_in_threadpool(
                engine.threads.get, thread_id, owner_key=caller.principal.key
            )
            ctx = _context(engine, caller, thread.tenant_id)
            approve = frame.get("approve") is True
            turn = engine.turn(ctx, thread_id, approve=approve, secrets=secrets, uploads=uploads)
            await _relay(websocket, turn)
        elif kind == "ping":
            await websocket.send_json({"type": "pong"})
        else:
            raise ValueError("frame type must be 'message', 'resume' or 'ping'")
    except CHAT_ERROR_TYPES as exc:
        extra = {"retry_after": exc.retry_after} if isinstance(exc, RateLimited) else {}
        await _ws_error(websocket, _status_of(exc), str(exc), **extra)
    except ValueError as exc:
        await _ws_error(websocket, 422, str(exc))


def _text_field(frame: dict[str, Any], key: str) -> str | None:
    """An optional string field of a frame; anything else is the client's error (422)."""
    value = frame.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"'{key}' must be a string or left out, not {type(value).__name__}")


def _secrets_field(frame: dict[str, Any]) -> dict[str, str]:
    """A resume frame's card values by tool call id (the error never quotes a value)."""
    value = frame.get("secrets") or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("'secrets' must map tool call ids to the values typed, as strings")
    return value


def _uploads_field(frame: dict[str, Any]) -> dict[str, str]:
    """A resume frame's started imports: operation ids by tool call id."""
    value = frame.get("uploads") or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(
            "'uploads' must map tool call ids to the operation ids the uploads started"
        )
    return value


async def _ws_error(websocket: WebSocket, status: int, detail: str, **extra: Any) -> None:
    await websocket.send_json({"type": "error", "status": status, "detail": detail, **extra})


async def _relay(websocket: WebSocket, events: Iterator[Event]) -> None:
    """Run the turn in a worker thread and forward each event as it happens."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()

    def produce() -> None:
        try:
            for event in events:
                loop.call_soon_threadsafe(queue.put_nowait, event)
        except BaseException as exc:  # delivered to the socket's task, not lost in the thread
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    worker = threading.Thread(target=produce, name="chat-turn", daemon=True)
    worker.start()
    failure: BaseException | None = None
    while True:
        item = await queue.get()
        if item is None:
            break
        if isinstance(item, BaseException):
            failure = item
            continue
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.send_json(item)  # the turn finishes even if the socket went away
    if failure is not None:
        if isinstance(failure, (*CHAT_ERROR_TYPES, ValueError)):
            raise failure
        log.error("chat.turn_failed", error_type=type(failure).__name__, exc_info=failure)
        await _ws_error(websocket, 500, "the turn failed; quote the request id when reporting it")
