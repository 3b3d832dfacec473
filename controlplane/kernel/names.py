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
# Env names a tenant may not set, each group with the reason the refusal gives: names the
# platform sets, names Cloud Run sets or refuses, and names Apache, PHP-FPM, PHP, the C
# library, the loader or shells act on (GCONV_PATH or LD_* would load a tenant's own shared
# object into PHP, past disable_functions).
RESERVED_ENV: tuple[tuple[tuple[str, ...], frozenset[str], str], ...] = (
    (("AIPRESS_", "WORDPRESS_", "WP_", "DB_"), frozenset(),
     "the platform sets it (site identity, database, WordPress configuration)"),
    (("K_", "CLOUD_RUN_", "X_GOOGLE_"), frozenset({"PORT"}),
     "Cloud Run sets it in every container (PORT, K_SERVICE, K_REVISION, CLOUD_RUN_JOB...) "
     "or refuses it"),
    (("APACHE_",), frozenset(),
     "Apache's start-up reads it (APACHE_RUN_USER, APACHE_LOG_DIR, APACHE_LOCK_DIR...): it "
     "would change who the web server runs as and where it writes"),
    (("PHP_", "FCGI_"), frozenset({"PHPRC"}),
     "PHP and PHP-FPM read it (PHPRC, PHP_INI_SCAN_DIR, PHP_FCGI_CHILDREN) and the platform "
     "sets the site's PHP limits through it"),
    (("HTTP_", "REQUEST_", "SERVER_", "SCRIPT_", "REMOTE_"),
     frozenset({"HTTPS", "QUERY_STRING", "AUTH_TYPE", "REDIRECT_STATUS", "CONTENT_TYPE",
                "CONTENT_LENGTH", "PATH_INFO", "PATH_TRANSLATED", "DOCUMENT_ROOT", "DOCUMENT_URI",
                "GATEWAY_INTERFACE", "ORIG_PATH_INFO"}),
     "PHP shows environment and request variables together in $_SERVER: it would pass for a "
     "request header or CGI variable (HTTP_HOST, REMOTE_ADDR, HTTPS...)"),
    (("LD_", "GCONV", "MALLOC_", "GLIBC_", "OPENSSL_", "SSL_", "CURL_"),
     frozenset({"LOCPATH", "NLSPATH", "HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN", "TZDIR"}),
     "the C library, the dynamic loader or OpenSSL/curl act on it (it could load code or "
     "files into PHP)"),
    (("BASH_", "PYTHON", "PERL", "RUBY"), frozenset({"IFS", "ENV", "PS4", "SHELLOPTS"}),
     "shells and interpreters the site's PHP may start act on it"),
    (("GOOGLE_", "FIREBASE_", "GCE_METADATA_", "CLOUDSDK_"), frozenset(),
     "Google's client libraries read it (credentials, metadata server, project)"),
    ((), frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "HOSTNAME", "TMPDIR", "TZ",
                    "LANG", "LANGUAGE"}),
     "the process environment depends on it (search path, home, user, locale, time zone)"),
    ((), frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}),
     "it would send the site's outbound requests through a proxy"),
)  # fmt: skip
RESERVED_ENV_PREFIXES = tuple(p for prefixes, _, _ in RESERVED_ENV for p in prefixes)
RESERVED_ENV_NAMES = frozenset(n for _, names, _ in RESERVED_ENV for n in names)


def reserved_env_reason(name: str) -> str | None:
    """Why `name` is reserved, or None if a tenant may set it."""
    for _, exact, reason in RESERVED_ENV:
        if name in exact:
            return reason
    for prefixes, _, reason in RESERVED_ENV:
        if name.startswith(prefixes):
            return reason
    return None


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
    reason = reserved_env_reason(value)
    if reason is not None:
        raise ValueError(
            f"env var name {value!r} is reserved: {reason}. Choose another name, such as MY_{value}"
        )
    return value
