"""gcp-mode authentication end to end: real Firebase ID tokens reach the control-plane API.

Two halves:

* Against the real Firebase Auth emulator (firebase-tools): users sign up and sign in over
  the emulator's REST API exactly as a client SDK would, an admin assigns roles through
  `PUT /v1/users/{uid}` (which writes Firebase custom claims), and the next ID token the
  user gets is honoured by the API. The emulator issues *unsigned* tokens and firebase-admin
  skips signature checks while FIREBASE_AUTH_EMULATOR_HOST is set, so this half proves
  claims, audience and plumbing, not cryptography.
* Without the emulator: firebase-admin's production path (RS256, kid, Google's x509 key
  endpoint). The one thing that cannot run offline - the HTTPS fetch of Google's public
  certificates - is served from a locally generated key pair by a transport adapter mounted
  on firebase-admin's own certificate-fetch session; everything else (firebase-admin's
  checks, google-auth's signature verification) is the real code.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import firebase_admin
import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from firebase_admin import _token_gen
from firebase_admin import auth as fb_auth
from pydantic import ValidationError

from controlplane import crypto
from controlplane.api.app import create_app
from controlplane.kernel import clock
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.conftest import LOG_FILE, wait_for_operation
from tests.integration.firebase_emulator import (
    FIREBASE_BIN,
    ROOT,
    AuthEmulator,
    start_auth_emulator,
)

pytestmark = pytest.mark.integration

PROJECT = "demo-aipress"
OTHER_PROJECT = "demo-aipress-other"
SIGNED_PROJECT = "aipress-signature-check"
PASSWORD = "correct-horse-battery"
SITE_EMAIL = "owner@example.com"
EMULATOR_VAR = "FIREBASE_AUTH_EMULATOR_HOST"


# --------------------------------------------------------------------------- helpers


def bearer(token: str) -> dict[str, str]:
    """Authorization headers for a token."""
    return {"Authorization": f"Bearer {token}"}


def real_encryption_keys() -> str:
    """A freshly generated keyring spec, "k1:<base64 of 32 random bytes>"."""
    return "k1:" + base64.urlsafe_b64encode(crypto.new_key()).decode()


def gcp_settings(tmp_path: Path, project: str, *, allow_emulator: bool) -> Settings:
    """gcp-mode settings with a real key, SQLite in tmp and the test log file."""
    home = tmp_path / f"home-{project}"
    return Settings(
        provider="gcp",
        firebase_project_id=project,
        allow_auth_emulator=allow_emulator,
        encryption_keys=real_encryption_keys(),
        database_url=f"sqlite:///{tmp_path / f'controlplane-{project}.db'}",
        home=home,
        log_file=LOG_FILE,
        log_level="DEBUG",
    )


@contextmanager
def control_plane(settings: Settings) -> Iterator[TestClient]:
    """The control-plane app in gcp-auth mode, its sites on the memory provider."""
    app = create_app(
        settings, platform_factory=lambda s: build_platform(s, provider=MemoryProvider())
    )
    with TestClient(app) as client:
        yield client


def _forget_firebase_app(name: str) -> None:
    with suppress(ValueError):
        firebase_admin.delete_app(firebase_admin.get_app(name))


@pytest.fixture(autouse=True)
def _fresh_firebase_apps() -> Iterator[None]:
    """firebase-admin apps are process-global and cache their auth client (which reads
    FIREBASE_AUTH_EMULATOR_HOST once); drop the control plane's after every test."""
    yield
    for project in (PROJECT, OTHER_PROJECT, SIGNED_PROJECT):
        _forget_firebase_app(f"aipress-{project}")


# --------------------------------------------------------------------------- settings


def test_gcp_settings_refuse_the_auth_emulator_without_opt_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(EMULATOR_VAR, "127.0.0.1:9099")
    monkeypatch.delenv("AIPRESS_ALLOW_AUTH_EMULATOR", raising=False)
    with pytest.raises(ValidationError, match="FIREBASE_AUTH_EMULATOR_HOST is set"):
        gcp_settings(tmp_path, PROJECT, allow_emulator=False)
    # The explicit test-only opt-in is the only way past the guard...
    assert gcp_settings(tmp_path, PROJECT, allow_emulator=True).allow_auth_emulator
    # ...and without the emulator variable the same production settings are fine.
    monkeypatch.delenv(EMULATOR_VAR)
    assert gcp_settings(tmp_path, PROJECT, allow_emulator=False).provider == "gcp"


# --------------------------------------------------------------------------- emulator half


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEmulator]:
    """The real Firebase Auth emulator, once for this module."""
    if not FIREBASE_BIN.exists():
        pytest.skip(
            f"{FIREBASE_BIN.relative_to(ROOT)} is missing: run `npm install` in {ROOT} "
            "(`make test` does) to get firebase-tools and its Auth emulator"
        )
    running = start_auth_emulator(tmp_path_factory.mktemp("firebase-auth-emulator"), PROJECT)
    yield running
    running.stop()


@pytest.fixture
def emulated(emulator: AuthEmulator, monkeypatch: pytest.MonkeyPatch) -> AuthEmulator:
    """Point firebase-admin at the emulator and start from an empty account store."""
    monkeypatch.setenv(EMULATOR_VAR, emulator.host)
    emulator.clear_accounts()
    return emulator


@pytest.fixture
def console(emulated: AuthEmulator) -> Iterator[Any]:
    """A firebase-admin app standing in for the Firebase console / a bootstrap script."""
    name = f"tests-console-{uuid.uuid4().hex[:8]}"
    app = firebase_admin.initialize_app(options={"projectId": PROJECT}, name=name)
    yield app
    firebase_admin.delete_app(app)


@pytest.fixture
def gcp_client(emulated: AuthEmulator, tmp_path: Path) -> Iterator[TestClient]:
    """The control plane verifying the emulator's ID tokens for PROJECT."""
    with control_plane(gcp_settings(tmp_path, PROJECT, allow_emulator=True)) as client:
        yield client


def bootstrap_admin(console: Any, emulator: AuthEmulator, email: str = "root@example.com") -> str:
    """The first admin: claims set directly with firebase-admin; returns a real ID token."""
    user = fb_auth.create_user(email=email, password=PASSWORD, app=console)
    fb_auth.set_custom_user_claims(user.uid, {"role": "admin"}, app=console)
    return emulator.sign_in(email, PASSWORD)


def test_emulator_tokens_carry_roles_assigned_through_the_api(
    gcp_client: TestClient, emulated: AuthEmulator, console: Any
) -> None:
    client = gcp_client
    admin = bearer(bootstrap_admin(console, emulated))
    me = client.get("/v1/me", headers=admin)
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "admin" and me.json()["tenants"] is None
    assert me.json()["email"] == "root@example.com"

    for tenant in ("acme", "globex"):
        created = client.post(
            "/v1/tenants", json={"id": tenant, "name": tenant.title()}, headers=admin
        )
        assert created.status_code == 201, created.text
    accepted = client.post(
        "/v1/tenants/acme/sites", json={"name": "crumbs", "admin_email": SITE_EMAIL}, headers=admin
    )
    assert accepted.status_code == 202, accepted.text
    assert (
        wait_for_operation(client, accepted.json()["operation"]["id"], admin)["status"]
        == "succeeded"
    )

    # A customer signs up on their own (client SDK REST call): no role yet.
    signed_up = emulated.sign_up("owner@acme.example.com", PASSWORD)
    uid = signed_up["localId"]
    before = bearer(signed_up["idToken"])
    refused = client.get("/v1/me", headers=before)
    assert refused.status_code == 403
    assert "no valid role claim" in refused.json()["detail"]

    # The admin assigns the tenant role through the API; it lands in Firebase custom claims.
    put = client.put(
        f"/v1/users/{uid}", json={"role": "tenant", "tenants": ["acme"]}, headers=admin
    )
    assert put.status_code == 200, put.text
    assert put.json()["role"] == "tenant" and put.json()["tenants"] == ["acme"]
    assert fb_auth.get_user(uid, app=console).custom_claims == {
        "role": "tenant",
        "tenant_id": "acme",
    }

    # Claims reach the *next* token: the old one is still role-less.
    assert client.get("/v1/me", headers=before).status_code == 403
    owner = bearer(emulated.sign_in("owner@acme.example.com", PASSWORD))
    me = client.get("/v1/me", headers=owner).json()
    assert me == {
        "sub": uid,
        "role": "tenant",
        "tenants": ["acme"],
        "email": "owner@acme.example.com",
    }

    sites = client.get("/v1/tenants/acme/sites", headers=owner)
    assert sites.status_code == 200, sites.text
    assert [s["name"] for s in sites.json()] == ["crumbs"]
    assert client.get("/v1/tenants/globex/sites", headers=owner).status_code == 404
    assert [t["id"] for t in client.get("/v1/tenants", headers=owner).json()] == ["acme"]
    forbidden = client.post("/v1/tenants", json={"id": "evil", "name": "Evil"}, headers=owner)
    assert forbidden.status_code == 403

    # An operator gets a `tenants` list claim and sees exactly those tenants.
    operator = fb_auth.create_user(email="ops@example.com", password=PASSWORD, app=console)
    put = client.put(
        f"/v1/users/{operator.uid}", json={"role": "operator", "tenants": ["globex"]}, headers=admin
    )
    assert put.status_code == 200, put.text
    ops = bearer(emulated.sign_in("ops@example.com", PASSWORD))
    assert client.get("/v1/me", headers=ops).json()["tenants"] == ["globex"]
    assert client.get("/v1/tenants/globex/sites", headers=ops).json() == []
    assert client.get("/v1/tenants/acme/sites", headers=ops).status_code == 404

    # A uid Firebase does not know is a 400 that says what to do, not a 500.
    unknown = client.put("/v1/users/no-such-uid", json={"role": "viewer"}, headers=admin)
    assert unknown.status_code == 400, unknown.text
    assert "no Firebase user has uid 'no-such-uid'" in unknown.json()["detail"]

    # Only admins manage users, even with a genuine token.
    denied = client.put(f"/v1/users/{uid}", json={"role": "admin", "tenants": []}, headers=owner)
    assert denied.status_code == 403
    assert fb_auth.get_user(uid, app=console).custom_claims == {
        "role": "tenant",
        "tenant_id": "acme",
    }


def test_emulator_mode_rejects_bad_tokens(
    gcp_client: TestClient, emulated: AuthEmulator, console: Any, tmp_path: Path
) -> None:
    client = gcp_client
    garbage = client.get("/v1/me", headers=bearer("not-a-jwt"))
    assert garbage.status_code == 401
    assert garbage.json()["detail"].startswith("Firebase ID token rejected")
    assert garbage.headers["www-authenticate"].startswith("Bearer")
    # google-auth quotes malformed tokens in its errors; the API must not echo them back.
    truncated = bootstrap_admin(console, emulated).rsplit(".", 1)[0]
    answer = client.get("/v1/me", headers=bearer(truncated))
    assert answer.status_code == 401
    assert truncated not in answer.text and "<token>" in answer.json()["detail"]
    assert client.get("/v1/me").status_code == 401

    # A genuine user whose token has no role claim: authenticated, but not authorised.
    fb_auth.create_user(email="nobody@example.com", password=PASSWORD, app=console)
    nobody = client.get("/v1/me", headers=bearer(emulated.sign_in("nobody@example.com", PASSWORD)))
    assert nobody.status_code == 403
    assert nobody.json()["detail"] == (
        "token has no valid role claim; an admin must assign one (admin, operator, viewer, tenant)"
    )

    # A real admin token of PROJECT, shown to a control plane configured for another project.
    admin_token = emulated.sign_in("root@example.com", PASSWORD)
    assert client.get("/v1/me", headers=bearer(admin_token)).status_code == 200
    other = gcp_settings(tmp_path, OTHER_PROJECT, allow_emulator=True)
    with control_plane(other) as other_client:
        wrong_audience = other_client.get("/v1/tenants", headers=bearer(admin_token))
    assert wrong_audience.status_code == 401
    assert 'incorrect "aud" (audience) claim' in wrong_audience.json()["detail"]
    assert f'Expected "{OTHER_PROJECT}" but got "{PROJECT}"' in wrong_audience.json()["detail"]


# --------------------------------------------------------------------------- signature half


@dataclass
class GoogleKeys:
    """Stand-in for Google's securetoken signing keys, served at the real cert URL."""

    certs: dict[str, str] = field(default_factory=dict)  # kid -> PEM certificate
    private: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def add(self, kid: str) -> rsa.RSAPrivateKey:
        """Generate a key pair and publish its self-signed certificate under `kid`."""
        key = new_rsa_key()
        self.certs[kid] = self_signed_cert(key)
        self.private[kid] = key
        return key


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_cert(key: rsa.RSAPrivateKey) -> str:
    """A PEM X.509 certificate for `key`, like those at Google's securetoken endpoint."""
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")]
    )
    now = clock.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class _ServeCerts(requests.adapters.BaseAdapter):
    """Answers GET <cert URL> with the keys' certificates, as Google's endpoint does."""

    def __init__(self, keys: GoogleKeys) -> None:
        super().__init__()
        self._keys = keys

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        self._keys.fetched.append(str(request.url))
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(self._keys.certs).encode()
        response.headers["Content-Type"] = "application/json; charset=UTF-8"
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


class _NoNetwork(requests.adapters.BaseAdapter):
    """Fails any other request made on the certificate session."""

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        raise AssertionError(f"unexpected network request to {request.url}")

    def close(self) -> None:
        pass


@pytest.fixture
def google_keys(monkeypatch: pytest.MonkeyPatch) -> GoogleKeys:
    """Serve our certificates at firebase-admin's ID-token cert URL.

    firebase-admin fetches Google's keys through `_token_gen.CertificateFetchRequest`, a
    google-auth transport over a (cache-control) requests session. After it is built, its
    session gets a transport adapter for exactly ID_TOKEN_CERT_URI (and a refusing one for
    every other URL), so the JSON parsing, kid lookup and RS256 verification stay real.
    """
    keys = GoogleKeys()
    original_init = _token_gen.CertificateFetchRequest.__init__

    def init(self: _token_gen.CertificateFetchRequest, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.session.mount("http://", _NoNetwork())
        self.session.mount("https://", _NoNetwork())
        self.session.mount(_token_gen.ID_TOKEN_CERT_URI, _ServeCerts(keys))

    monkeypatch.setattr(_token_gen.CertificateFetchRequest, "__init__", init)
    return keys


@pytest.fixture
def production_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No emulator; Application Default Credentials from a (fake, offline) service account.

    firebase-admin's auth client loads ADC when built (Cloud Run provides them); a key file
    lets google-auth load them without the metadata server. Nothing is ever signed with it.
    """
    monkeypatch.delenv(EMULATOR_VAR, raising=False)
    monkeypatch.delenv("AIPRESS_ALLOW_AUTH_EMULATOR", raising=False)
    pem = new_rsa_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    account = {
        "type": "service_account",
        "project_id": SIGNED_PROJECT,
        "private_key_id": "test-key",
        "private_key": pem.decode(),
        "client_email": f"controlplane@{SIGNED_PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(account))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))


Mint = Callable[..., str]


@pytest.fixture
def mint(google_keys: GoogleKeys) -> Mint:
    """mint(kid, **claim overrides) -> an RS256 Firebase ID token for SIGNED_PROJECT."""

    def make(kid: str, key: rsa.RSAPrivateKey | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"https://securetoken.google.com/{SIGNED_PROJECT}",
            "aud": SIGNED_PROJECT,
            "auth_time": now - 10,
            "user_id": "uid-owner",
            "sub": "uid-owner",
            "iat": now - 10,
            "exp": now + 3600,
            "email": "owner@acme.example.com",
            "firebase": {"identities": {}, "sign_in_provider": "password"},
            "role": "tenant",
            "tenant_id": "acme",
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        signer = key or google_keys.private[kid]
        return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": kid})

    return make


def tamper(token: str, **changes: Any) -> str:
    """The token with its payload edited (None deletes a claim) and the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{edited}.{signature}"


@pytest.fixture
def signed_client(
    production_env: None, google_keys: GoogleKeys, tmp_path: Path
) -> Iterator[TestClient]:
    """The control plane in production auth mode (no emulator) for SIGNED_PROJECT."""
    with control_plane(gcp_settings(tmp_path, SIGNED_PROJECT, allow_emulator=False)) as client:
        yield client


def test_production_path_accepts_signed_token_and_rejects_tampered_one(
    signed_client: TestClient, google_keys: GoogleKeys, mint: Mint
) -> None:
    client = signed_client
    google_keys.add("key-2024")
    token = mint("key-2024")

    me = client.get("/v1/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    assert me.json() == {
        "sub": "uid-owner",
        "role": "tenant",
        "tenants": ["acme"],
        "email": "owner@acme.example.com",
    }
    assert google_keys.fetched and all(
        u == _token_gen.ID_TOKEN_CERT_URI for u in google_keys.fetched
    )

    # Same signature, payload promoted to admin: the signature no longer matches.
    promoted = tamper(token, role="admin", tenant_id=None)
    for path in ("/v1/me", "/v1/tenants"):
        response = client.get(path, headers=bearer(promoted))
        assert response.status_code == 401, response.text
        assert "signature" in response.json()["detail"].lower()


def test_production_path_rejects_forged_expired_and_foreign_tokens(
    signed_client: TestClient, google_keys: GoogleKeys, mint: Mint
) -> None:
    client = signed_client
    google_keys.add("key-a")

    def detail_of(token: str) -> str:
        response = client.get("/v1/me", headers=bearer(token))
        assert response.status_code == 401, response.text
        message: str = response.json()["detail"]
        return message

    # Signed by an attacker's key under a kid Google does publish.
    forged = mint("key-a", key=new_rsa_key(), role="admin", tenant_id=None)
    assert "signature" in detail_of(forged).lower()
    # A kid Google does not publish.
    unknown = mint("key-unknown", key=new_rsa_key())
    assert "key-unknown" in detail_of(unknown)
    # Correctly signed, but expired an hour ago.
    now = int(time.time())
    expired = mint("key-a", iat=now - 7200, auth_time=now - 7200, exp=now - 3600)
    assert "expired" in detail_of(expired).lower()
    # Correctly signed, for another Firebase project.
    foreign = mint(
        "key-a",
        aud="someone-elses-project",
        iss="https://securetoken.google.com/someone-elses-project",
    )
    assert 'incorrect "aud" (audience) claim' in detail_of(foreign)
    # Unsigned (alg "none", what the emulator issues) is refused outside emulator mode.
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"key-a"}').rstrip(b"=")
    unsigned = f"{header.decode()}.{mint('key-a').split('.')[1]}."
    assert "incorrect algorithm" in detail_of(unsigned)
    # The control plane still works for the genuine article.
    assert client.get("/v1/me", headers=bearer(mint("key-a"))).status_code == 200
