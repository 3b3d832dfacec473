"""OAuth clients: pre-registered ones from settings, and Client ID Metadata Document clients
(the client_id is an https URL whose JSON document names the redirect URIs)."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from chatbot.settings import ChatSettings

MAX_DOCUMENT_BYTES = 64 * 1024
FETCH_TIMEOUT_SECONDS = 5.0
# Client ID Metadata Document lookups (name resolution and fetch) at once, per directory: they
# run in the thread pool every route and tool call shares, and /oauth/authorize, which needs no
# sign-in, starts one for any client_id URL, so a stranger's slow host could hold every thread.
MAX_LOOKUPS_IN_FLIGHT = 8
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
PRIVATE_USE_SCHEME = re.compile(r"[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+")


class UnknownClient(Exception):
    """A client_id this server cannot resolve to a client with redirect URIs."""


class LookupsBusy(UnknownClient):
    """As many client metadata lookups as allowed are under way: the caller tries later."""


@dataclass(frozen=True)
class Client:
    """An OAuth client: its id, exact redirect URIs and a name to show at consent."""

    client_id: str
    redirect_uris: tuple[str, ...]
    name: str
    # Pre-registered in settings: the platform vouches for its redirect URIs. A metadata
    # document's client is anyone's, and its URIs are wherever its author likes.
    registered: bool = False


class ClientDirectory:
    """Resolves a client_id to a Client."""

    def __init__(self, settings: ChatSettings) -> None:
        self._registered = settings.mcp_clients
        self._allow_loopback = settings.mcp_allow_loopback_client_metadata
        self._in_flight = threading.BoundedSemaphore(MAX_LOOKUPS_IN_FLIGHT)

    def resolve(self, client_id: str) -> Client:
        """The registered client, or the one a metadata document at `client_id` describes."""
        if client_id in self._registered:
            return Client(client_id, tuple(self._registered[client_id]), client_id, True)
        if not client_id.startswith(("https://", "http://")):
            raise UnknownClient(
                f"unknown client_id {client_id!r}: use a pre-registered client or an https "
                "URL of a Client ID Metadata Document"
            )
        if not self._in_flight.acquire(blocking=False):
            raise LookupsBusy(
                "too many client metadata documents are being fetched at once; try again "
                "shortly (pre-registered clients are not affected)"
            )
        try:
            address = self._check_url(client_id)
            document = self._fetch(client_id, address)
        finally:
            self._in_flight.release()
        return _client_from(client_id, document)

    def _check_url(self, url: str) -> str | None:
        """The public address the document is fetched from (None: an allowed loopback)."""
        parts = urlsplit(url)
        loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_NAMES
        if parts.scheme != "https" and not (loopback and self._allow_loopback):
            raise UnknownClient("a client_id URL must use https")
        if parts.path in ("", "/") or parts.fragment or parts.username or parts.password:
            raise UnknownClient("a client_id URL needs a path and no fragment or credentials")
        if loopback:
            return None
        addresses = _addresses(parts.hostname or "")
        if not all(map(_public, addresses)):
            raise UnknownClient("a client_id URL must name a public host")
        return str(min(addresses, key=lambda a: a.version))

    def _fetch(self, url: str, address: str | None) -> dict[str, object]:
        """The document at `url`, fetched from the checked `address` itself: resolving the
        name a second time let a rebinding DNS answer 127.0.0.1 (or a metadata address) the
        second time. TLS still checks the certificate against the URL's host name."""
        parts = urlsplit(url)
        target, headers = url, {"Accept": "application/json"}
        extensions: dict[str, str] = {}
        if address is not None:
            host = f"[{address}]" if ":" in address else address
            port = f":{parts.port}" if parts.port else ""
            target = urlunsplit(parts._replace(netloc=host + port))
            headers["Host"] = parts.netloc
            extensions["sni_hostname"] = parts.hostname or ""
        deadline = time.monotonic() + FETCH_TIMEOUT_SECONDS
        try:
            with (
                httpx.Client(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False,
                             trust_env=False) as http,
                http.stream("GET", target, headers=headers, extensions=extensions) as response,
            ):  # fmt: skip
                if response.status_code != 200:
                    raise UnknownClient(
                        f"the client metadata document answered {response.status_code}"
                    )
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise UnknownClient("the client metadata document is over 64 KB")
                    if time.monotonic() > deadline:  # a server dripping bytes holds a thread
                        raise UnknownClient("the client metadata document took over 5 s")
        except httpx.HTTPError as exc:
            raise UnknownClient(
                f"the client metadata document could not be fetched ({type(exc).__name__})"
            ) from exc
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise UnknownClient("the client metadata document is not JSON") from exc
        if not isinstance(document, dict):
            raise UnknownClient("the client metadata document is not a JSON object")
        return document


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses `host` resolves to (once)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise UnknownClient(f"the client_id host {host!r} does not resolve") from exc
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


# IPv6 prefixes that carry an IPv4 address (RFC 6052 NAT64, RFC 8215 local-use translation,
# the deprecated IPv4-compatible ::/96): ipaddress calls them global whatever they carry.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
LOCAL_TRANSLATION = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `address` is global, and so is any IPv4 address it carries."""
    if not address.is_global:
        return False
    if not isinstance(address, ipaddress.IPv6Address):
        return True
    if address in LOCAL_TRANSLATION:
        return False  # where its IPv4 address sits depends on the local prefix length
    carried = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
    if carried is None and (address in NAT64 or address in IPV4_COMPATIBLE):
        carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return carried is None or carried.is_global


def _client_from(client_id: str, document: dict[str, object]) -> Client:
    if document.get("client_id") != client_id:
        raise UnknownClient("the client metadata document's client_id is not its own URL")
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise UnknownClient("the client metadata document names no redirect_uris")
    refused = [why for why in map(check_redirect_uri, uris) if why is not None]
    if refused:
        raise UnknownClient(f"the client metadata document's {refused[0]}")
    name = document.get("client_name")
    return Client(client_id, tuple(uris), name if isinstance(name, str) else client_id)


def check_redirect_uri(uri: str) -> str | None:
    """Why `uri` cannot be a client's redirect URI, or None: https, http on a loopback
    address (RFC 8252 §7.3), or a private-use scheme with a dot (§7.1); never a fragment.
    The consent page sends the browser to it, so javascript: or data: would run there."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return f"the redirect URI {uri!r} is not a URL"
    if parts.fragment or "#" in uri:
        return f"the redirect URI {uri!r} has a fragment"
    if "@" in parts.netloc:  # https://aipress.example@elsewhere.example/ reads as the first
        return f"the redirect URI {uri!r} has credentials (user@) before its host"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in (*LOOPBACK_NAMES, "::1"):
        return None
    if PRIVATE_USE_SCHEME.fullmatch(parts.scheme) and parts.scheme not in ("http", "https"):
        return None
    return (f"the redirect URI {uri!r} must be https, http on a loopback address, or a "
            "private-use scheme such as com.example.app:/callback")  # fmt: skip
