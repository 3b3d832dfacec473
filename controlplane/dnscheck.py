"""Proof that a tenant controls a custom domain: a DNS TXT record holding the claim's token.

The resolver is the system's, or the nameservers of `AIPRESS_DNS_NAMESERVERS`
(`ip[:port]`, comma-separated): tests point it at a DNS server they run themselves.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import dns.exception
import dns.resolver

CHALLENGE_LABEL = "_aipress-challenge"
LOOKUP_SECONDS = 5.0

# (domain, token) -> None when proven, else what is wrong, in words the user can act on.
DomainCheck = Callable[[str, str], str | None]


def challenge_name(domain: str) -> str:
    """Where the TXT record of a claim lives."""
    return f"{CHALLENGE_LABEL}.{domain}"


def new_token() -> str:
    """A fresh claim token (128 random bits, hex: valid in any TXT record)."""
    return secrets.token_hex(16)


def _nameservers(spec: str) -> list[tuple[str, int]]:
    servers = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        host, port = item, 53
        if item.startswith("["):  # [ipv6]:port
            host, _, rest = item[1:].partition("]")
            port = int(rest.lstrip(":") or 53)
        elif item.count(":") == 1:
            host, _, port_text = item.partition(":")
            port = int(port_text)
        servers.append((host, port))
    return servers


def txt_check(nameservers: str = "", timeout: float = LOOKUP_SECONDS) -> DomainCheck:
    """A check that looks the claim's TXT record up (system resolver, or `nameservers`)."""
    servers = _nameservers(nameservers)

    def check(domain: str, token: str) -> str | None:
        resolver = dns.resolver.Resolver(configure=not servers)
        if servers:
            resolver.nameservers = [host for host, _ in servers]
            resolver.port = servers[0][1]
        resolver.lifetime = timeout
        name = challenge_name(domain)
        hint = f'create a TXT record {name} with the value "{token}", then verify again'
        try:
            answer = resolver.resolve(name, "TXT")
        except dns.resolver.NXDOMAIN:
            return f"{name} does not exist: {hint}"
        except dns.resolver.NoAnswer:
            return f"{name} has no TXT record: {hint}"
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            return (
                f"the DNS lookup of {name} failed ({type(exc).__name__}); "
                "retry in a few minutes (new records take a while to appear)"
            )
        values = [b"".join(record.strings).decode(errors="replace") for record in answer]
        if token in values:
            return None
        return f"the TXT records of {name} do not hold this claim's token: {hint}"

    return check
