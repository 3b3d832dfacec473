"""Validation of the names users choose: tenants, sites, domains, env vars."""

from __future__ import annotations

import re

# Whole-string patterns (`fullmatch`): `$` alone would also accept a trailing newline.
DNS_LABEL = re.compile(r"[a-z](?:[a-z0-9-]*[a-z0-9])?")
# Env names: ASCII letters, digits and '_' only, so a pool file's quoted `env["NAME"]` key
# can hold no quote, `$` or bracket; PHP's INI keywords and constant names (NULL, E_ALL...)
# are fine because the key is quoted (runtime.ini_key).
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
TENANT_MAX = 30
SITE_MAX = 40
ENV_MAX = 64
RESERVED_NAMES = frozenset(
    {
        "admin", "api", "app", "aipress", "auth", "billing", "chat", "controlplane",
        "dashboard", "default", "localhost", "mail", "platform", "root", "static",
        "status", "system", "www", "wp-admin", "test",
    }
)  # fmt: skip
# Special-use and private names (RFC 6761, 6762, 8375, 9476 and common internal suffixes):
# they never reach a site from the internet, and some name this machine's own services.
# .example and .test stay allowed: no public DNS answers for them, so no claim is ever proven.
RESERVED_TLDS = frozenset(
    {
        "localhost", "local", "internal", "intranet", "lan", "home", "corp", "private",
        "localdomain", "arpa", "home.arpa", "invalid", "onion", "alt",
    }
)  # fmt: skip
METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data.ec2.internal"}
)
# Names the platform sets, and names the C library, loader or shells act on (GCONV_PATH
# or LD_* would load a tenant's own shared object into PHP, past disable_functions).
RESERVED_ENV_PREFIXES = (
    "AIPRESS_", "WORDPRESS_", "WP_", "DB_", "PHP_", "LD_", "GCONV", "MALLOC_", "GLIBC_",
    "GOOGLE_", "FIREBASE_", "OPENSSL_", "SSL_", "CURL_", "BASH_", "PYTHON", "PERL", "RUBY",
)  # fmt: skip
RESERVED_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "HOSTNAME", "TMPDIR", "TZ", "TZDIR",
        "LANG", "LANGUAGE", "LOCPATH", "NLSPATH", "HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN",
        "IFS", "ENV", "PS4", "SHELLOPTS", "PHPRC", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
        "ALL_PROXY", "K_SERVICE", "PORT",
    }
)  # fmt: skip


def check_label(value: str, *, kind: str, max_length: int) -> str:
    """Return `value` if it is a valid DNS label for a tenant or site; raise ValueError."""
    if not value:
        raise ValueError(f"{kind} name must not be empty")
    if len(value) > max_length:
        raise ValueError(f"{kind} name must be at most {max_length} characters")
    if not DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{kind} name must use lowercase letters, digits and hyphens, start with a letter "
            "and not end with a hyphen (e.g. 'my-bakery')"
        )
    if "--" in value:
        raise ValueError(f"{kind} name must not contain '--'")
    if value in RESERVED_NAMES:
        raise ValueError(f"{kind} name {value!r} is reserved; choose another")
    return value


def check_tenant_id(value: str) -> str:
    """Validate a tenant id."""
    return check_label(value, kind="tenant", max_length=TENANT_MAX)


def check_site_name(value: str) -> str:
    """Validate a site name."""
    return check_label(value, kind="site", max_length=SITE_MAX)


def check_domain(value: str, platform_domain: str | None = None) -> str:
    """Validate and normalise a custom domain (lowercase FQDN, no scheme, no port)."""
    domain = value.strip().lower().rstrip(".")
    if len(domain) > 253:
        raise ValueError("domain must be at most 253 characters")
    labels = domain.split(".")
    if len(labels) < 2:
        raise ValueError("domain must be a fully qualified name such as 'shop.example.com'")
    for label in labels:
        if (
            not label
            or len(label) > 63
            or not re.match(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$", label)
        ):
            raise ValueError(
                f"domain label {label!r} is invalid: use letters, digits and hyphens "
                "(no scheme, path or port)"
            )
    if labels[-1].isdigit() or re.fullmatch(r"(0x[0-9a-f]+|[0-9]+)", labels[-1]):
        raise ValueError("domain must be a name, not an IP address")
    if domain == "localhost" or domain.endswith(".localhost"):
        raise ValueError("'.localhost' names are the platform's preview names; use your own domain")
    if labels[-1] in RESERVED_TLDS or ".".join(labels[-2:]) in RESERVED_TLDS:
        raise ValueError(
            f"names under .{labels[-1]} are reserved or private (they resolve inside a "
            "network, not on the internet); use a public domain you own"
        )
    if domain in METADATA_NAMES or any(domain.endswith("." + m) for m in METADATA_NAMES):
        raise ValueError(f"{domain!r} is a cloud metadata name and cannot be a site's domain")
    if platform_domain and (domain == platform_domain or domain.endswith("." + platform_domain)):
        raise ValueError(
            f"names under {platform_domain} are the platform's preview names; use your own domain"
        )
    return domain


def check_env_name(value: str) -> str:
    """Validate an environment variable name for tenant integrations."""
    if not value or len(value) > ENV_MAX or not ENV_NAME.fullmatch(value):
        raise ValueError(
            f"env var name must be 1-{ENV_MAX} characters of A-Z, 0-9 and '_', "
            "not starting with a digit (e.g. STRIPE_API_KEY)"
        )
    if value in RESERVED_ENV_NAMES or value.startswith(RESERVED_ENV_PREFIXES):
        raise ValueError(
            f"env var name {value!r} is reserved for the platform "
            f"(reserved prefixes: {', '.join(RESERVED_ENV_PREFIXES)})"
        )
    return value
