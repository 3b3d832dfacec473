"""secrets step: Secret Manager secrets of a site (database password, WordPress salts),
labelled, readable by the runtime's service account only."""

from __future__ import annotations

import contextlib
import secrets as random

from google.api_core import exceptions

from controlplane.admin_login import login_key
from controlplane.engine.provider import SiteContext
from controlplane.kernel.secret_record import note_secret
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.identity import ensure_tenant_account
from controlplane.providers.gcp.naming import labels

SALT_KEYS = ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
             "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")  # fmt: skip
ACCESSOR = "roles/secretmanager.secretAccessor"


class SecretManagerSecrets(GcpStep):
    """Creates the site's secrets with one version each and grants the runtime access."""

    def _path(self, secret_id: str) -> str:
        return f"projects/{self.project}/secrets/{secret_id}"

    def put(self, secret_id: str, value: str, secret_labels: dict[str, str], reader: str) -> str:
        """Create the secret if needed and add `value` as its newest version."""
        client = self.clients.secrets
        with contextlib.suppress(exceptions.Conflict):  # ALREADY_EXISTS is a 409 over REST
            client.create_secret(
                request={
                    "parent": f"projects/{self.project}",
                    "secret_id": secret_id,
                    "secret": {"replication": {"automatic": {}}, "labels": secret_labels},
                }
            )
        path = self._path(secret_id)
        if self._latest(path) != value.encode():
            added = client.add_secret_version(
                request={"parent": path, "payload": {"data": value.encode()}}
            )
            # Only the newest value stays readable: a rotated or replaced value is destroyed.
            for version in client.list_secret_versions(
                request={"parent": path, "filter": "state:ENABLED"}
            ):
                if version.name != added.name:
                    client.destroy_secret_version(request={"name": version.name})
        # A reader made moments ago may not be visible to the policy check yet: retried.
        self.propagation.call(lambda: self._grant_reader(path, f"serviceAccount:{reader}"))
        return path

    def _grant_reader(self, path: str, member: str) -> None:
        client = self.clients.secrets
        policy = client.get_iam_policy(request={"resource": path})
        if not any(b.role == ACCESSOR and member in b.members for b in policy.bindings):
            policy.bindings.add(role=ACCESSOR, members=[member])
            client.set_iam_policy(request={"resource": path, "policy": policy})

    def ensure(self, ctx: SiteContext) -> None:
        """The database password (from the vault) and fresh WordPress salts."""
        names = self.names(ctx)
        _user, password = ctx.credentials.get_or_create("database", names.db_user)
        salts = "\n".join(f"{key}={random.token_urlsafe(48)}" for key in SALT_KEYS)
        for line in salts.splitlines():
            note_secret(line.split("=", 1)[1], "wordpress salt")
        _admin, admin_password = ctx.credentials.get_or_create("wordpress_admin", ctx.admin_user)
        reader = ensure_tenant_account(self.clients, self.project, ctx.tenant_id, self.propagation)
        self.put(names.db_password_secret, password, labels(ctx), reader)
        self.put(names.admin_password_secret, admin_password, labels(ctx), reader)
        self.put(names.login_key_secret, login_key(ctx.credentials), labels(ctx), reader)
        if not self._exists(names.salts_secret):
            self.put(names.salts_secret, salts, labels(ctx), reader)
        ctx.resources["secrets"] = {
            "db_password": names.db_password_secret,
            "salts": names.salts_secret,
            "admin_password": names.admin_password_secret,
            "login_key": names.login_key_secret,
        }

    def _latest(self, path: str) -> bytes | None:
        """The newest value, if any (an unchanged value adds no version)."""
        try:
            found = self.clients.secrets.access_secret_version(
                request={"name": f"{path}/versions/latest"}
            )
        except exceptions.NotFound:
            return None
        return bytes(found.payload.data)

    def _exists(self, secret_id: str) -> bool:
        try:
            self.clients.secrets.get_secret(request={"name": self._path(secret_id)})
        except exceptions.NotFound:
            return False
        return True

    def remove(self, ctx: SiteContext) -> None:
        """Delete the secrets (no-op when gone)."""
        names = self.names(ctx)
        recorded = ctx.resources.get("secrets") or {}
        for secret_id in (recorded.get("db_password", names.db_password_secret),
                          recorded.get("salts", names.salts_secret),
                          recorded.get("admin_password", names.admin_password_secret),
                          recorded.get("login_key", names.login_key_secret),
                          recorded.get("probe_token", names.probe_token_secret)):  # fmt: skip
            with contextlib.suppress(exceptions.NotFound):
                self.clients.secrets.delete_secret(request={"name": self._path(secret_id)})
        ctx.resources.pop("secrets", None)
