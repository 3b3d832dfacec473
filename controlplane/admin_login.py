"""One-click wp-admin: short-lived, single-use sign-in tokens signed with a per-site key.

The key is generated once into the site's encrypted vault and handed to the site
(`AIPRESS_LOGIN_KEY` in wp-config.php locally, a Secret Manager reference in gcp); the
must-use plugin `aipress-login.php` checks the signature, the site, the expiry and that the
nonce was never used before. The token travels in the URL's fragment, which browsers never
send to a server: it stays out of access logs, Cloud Run's request log and Referer headers,
and a link-preview bot that fetches the URL cannot spend it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from controlplane.engine.provider import CredentialVault

KEY_KIND = "wp_login_key"
KEY_USER = "hmac-sha256"
QUERY = "aipress_login"


def login_key(vault: CredentialVault) -> str:
    """The site's signing key, generated on first use (the wordpress step hands it over)."""
    return vault.get_or_create(KEY_KIND, KEY_USER)[1]


def sign_token(
    *, key: str, site_id: str, user: str, expires_at: int, nonce: str | None = None
) -> str:
    """`<base64url(JSON claims)>.<hex HMAC-SHA256 of that text>`, as the plugin checks it."""
    claims = {
        "site": site_id,
        "user": user,
        "exp": expires_at,
        "nonce": nonce or secrets.token_hex(16),
    }
    text = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    payload = base64.urlsafe_b64encode(text).rstrip(b"=").decode()
    signature = hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{signature}"


def login_url(site_url: str, token: str) -> str:
    """The link that signs in: wp-login.php with the token in the fragment."""
    return f"{site_url.rstrip('/')}/wp-login.php?{QUERY}=1#{token}"
