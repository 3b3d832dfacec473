"""Site credentials encrypted in the control-plane database."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controlplane.crypto import Keyring, generate_password
from controlplane.models import Credential, EnvVar, TenantBackupKey, utcnow


def credential_context(site_id: str, kind: str) -> str:
    """Associated data that binds a ciphertext to its site and kind."""
    return f"site:{site_id}:{kind}"


def env_context(tenant_id: str, name: str) -> str:
    """Associated data that binds a secret env value to its tenant and name."""
    return f"env:{tenant_id}:{name}"


def backup_key_context(tenant_id: str) -> str:
    """Associated data that binds a tenant's backup key to that tenant."""
    return f"backup:{tenant_id}"


def tenant_backup_password(session: Session, keyring: Keyring, tenant_id: str) -> str:
    """The tenant's backup key, made (and committed) on first use; one per tenant."""
    for _attempt in range(2):
        row = session.get(TenantBackupKey, tenant_id)
        if row is not None:
            return keyring.decrypt(row.ciphertext, backup_key_context(tenant_id))
        password = generate_password(48)
        ciphertext = keyring.encrypt(password, backup_key_context(tenant_id))
        session.add(
            TenantBackupKey(
                tenant_id=tenant_id, ciphertext=ciphertext, key_id=keyring.active_key_id
            )
        )
        try:
            session.commit()
            return password
        except IntegrityError:  # another process made it first: use that one
            session.rollback()
    raise RuntimeError(f"the backup key of tenant {tenant_id!r} could not be read or made")


class DatabaseVault:
    """A site's credentials; each new one is committed at once so a retried step reuses it."""

    def __init__(self, session: Session, keyring: Keyring, site_id: str) -> None:
        self._session = session
        self._keyring = keyring
        self._site_id = site_id

    def _row(self, kind: str) -> Credential | None:
        return self._session.scalar(
            select(Credential).where(Credential.site_id == self._site_id, Credential.kind == kind)
        )

    def get(self, kind: str) -> tuple[str, str] | None:
        """(username, password) of `kind`, if stored."""
        row = self._row(kind)
        if row is None:
            return None
        context = credential_context(self._site_id, kind)
        return row.username, self._keyring.decrypt(row.ciphertext, context)

    def get_or_create(self, kind: str, username: str) -> tuple[str, str]:
        """(username, password) of `kind`, generating and storing it on first use."""
        existing = self.get(kind)
        if existing is not None:
            return existing
        password = generate_password()
        self.put(kind, username, password)
        return username, password

    def put(self, kind: str, username: str, password: str) -> None:
        """Store (or replace, on rotation) a credential."""
        ciphertext = self._keyring.encrypt(password, credential_context(self._site_id, kind))
        row = self._row(kind)
        if row is None:
            row = Credential(site_id=self._site_id, kind=kind, username=username)
            self._session.add(row)
        row.username = username
        row.ciphertext = ciphertext
        row.key_id = self._keyring.active_key_id
        row.rotated_at = utcnow()
        self._session.commit()


def tenant_env_plaintext(session: Session, keyring: Keyring, tenant_id: str) -> dict[str, str]:
    """A tenant's env vars with secrets decrypted, for the runtime only."""
    env: dict[str, str] = {}
    for var in session.scalars(select(EnvVar).where(EnvVar.tenant_id == tenant_id)):
        if var.secret and var.ciphertext is not None:
            env[var.name] = keyring.decrypt(var.ciphertext, env_context(tenant_id, var.name))
        elif var.value is not None:
            env[var.name] = var.value
    return env


def reencrypt_all(session: Session, keyring: Keyring) -> int:
    """Re-encrypt every stored ciphertext under the active key; returns how many changed."""
    changed = 0
    for cred in session.scalars(select(Credential)):
        if cred.key_id != keyring.active_key_id:
            context = credential_context(cred.site_id, cred.kind)
            cred.ciphertext = keyring.reencrypt(cred.ciphertext, context)
            cred.key_id = keyring.active_key_id
            changed += 1
    for key in session.scalars(select(TenantBackupKey)):
        if key.key_id != keyring.active_key_id:
            key.ciphertext = keyring.reencrypt(key.ciphertext, backup_key_context(key.tenant_id))
            key.key_id = keyring.active_key_id
            changed += 1
    for var in session.scalars(select(EnvVar).where(EnvVar.secret.is_(True))):
        if var.ciphertext is not None and var.key_id != keyring.active_key_id:
            var.ciphertext = keyring.reencrypt(var.ciphertext, env_context(var.tenant_id, var.name))
            var.key_id = keyring.active_key_id
            changed += 1
    session.commit()
    return changed
