"""One service account per tenant: the identity its Cloud Run services run as.

Per tenant, not per site: a project holds 100 service accounts by default, so one per site
would cap the platform near 100 sites per project, while one per tenant keeps tenants apart
(a site can read only its own tenant's secrets and buckets) and lets a tenant's sites share
an identity, which they may: they have one owner. The account is made on the tenant's first
site and kept for its later ones.

IAM is eventually consistent: a new account can be "not found", and policies naming it
refused, for a minute or more after it is made. Nothing uses a new account before IAM
shows it, and every policy write naming it is retried (bounded) until IAM accepts it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.api_core import exceptions
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.base import GcpClients

IAM_API = "https://iam.googleapis.com"
T = TypeVar("T")


class IamServiceAccounts:
    """The IAM API's service accounts over REST (google-cloud-iam's client speaks gRPC only;
    this keeps every call on one transport the tests can check). `session` is a
    google.auth AuthorizedSession, or any requests-like session."""

    def __init__(self, session: Any, base_url: str = IAM_API) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    def _check(self, response: Any) -> dict[str, Any]:
        if response.status_code >= 400:
            raise exceptions.from_http_response(response)  # type: ignore[no-untyped-call]
        body: dict[str, Any] = response.json()
        return body

    def get_service_account(self, request: dict[str, Any]) -> dict[str, Any]:
        """GET v1/{name}."""
        return self._check(self.session.get(f"{self.base_url}/v1/{request['name']}"))

    def create_service_account(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST v1/{name}/serviceAccounts."""
        body = {"accountId": request["account_id"], "serviceAccount": {
            "displayName": request["service_account"]["display_name"],
            "description": request["service_account"]["description"]}}  # fmt: skip
        url = f"{self.base_url}/v1/{request['name']}/serviceAccounts"
        return self._check(self.session.post(url, json=body))


def _propagating(exc: BaseException) -> bool:
    """An error IAM's eventual consistency or a concurrent writer explains: retry it."""
    if isinstance(exc, exceptions.InvalidArgument | exceptions.BadRequest):
        return "does not exist" in str(exc)  # a policy naming an account not yet visible
    # 409 ABORTED: the policy changed since it was read (etag); also 412 over some APIs.
    return isinstance(exc, exceptions.Aborted | exceptions.Conflict | exceptions.PreconditionFailed)


@dataclass(frozen=True)
class Propagation:
    """How long to wait for IAM (Google documents up to 60 s for a new account, often more
    for policy changes) and how fast to retry within that."""

    first_wait: float = 1.0
    timeout: float = 180.0

    def call(self, fn: Callable[[], T], *, retry_not_found: bool = False) -> T:
        """Run `fn`, retrying propagation errors (and NotFound when asked) until timeout."""

        def transient(exc: BaseException) -> bool:
            return _propagating(exc) or (retry_not_found and isinstance(exc, exceptions.NotFound))

        retrying = Retrying(
            retry=retry_if_exception(transient),
            wait=wait_exponential(multiplier=self.first_wait, max=max(self.first_wait, 15)),
            stop=stop_after_delay(self.timeout),
            reraise=True,
        )
        return retrying(fn)


def account_id(tenant_id: str) -> str:
    """The account id (6-30 characters). Ids that would not fit whole take a hash of the
    full tenant id, so two tenants can never share an account."""
    whole = f"aipress-t-{tenant_id}"
    if len(whole) <= 30:
        return whole
    digest = hashlib.sha256(tenant_id.encode()).hexdigest()[:8]
    return f"aipress-t-{tenant_id[:11].rstrip('-')}-{digest}"


def tenant_account(project: str, tenant_id: str) -> str:
    """The tenant's service account e-mail."""
    return f"{account_id(tenant_id)}@{project}.iam.gserviceaccount.com"


def ensure_tenant_account(
    clients: GcpClients, project: str, tenant_id: str, propagation: Propagation | None = None
) -> str:
    """Create the tenant's account if it does not exist and wait until IAM shows it; return
    its e-mail. It holds no project-level role: every grant is on the tenant's own secrets,
    bucket and services (the database is reached by password over the sites' VPC)."""
    wait = propagation or Propagation()
    email = tenant_account(project, tenant_id)
    name = f"projects/{project}/serviceAccounts/{email}"
    try:
        existing = clients.iam.get_service_account(request={"name": name})
    except exceptions.NotFound:
        with contextlib.suppress(exceptions.Conflict):  # ALREADY_EXISTS: a concurrent first site
            clients.iam.create_service_account(
                request={
                    "name": f"projects/{project}",
                    "account_id": account_id(tenant_id),
                    "service_account": {
                        "display_name": f"AIPress tenant {tenant_id}",
                        "description": f"Runs a tenant's sites (aipress-tenant-id={tenant_id})",
                    },
                }
            )
        existing = wait.call(
            lambda: clients.iam.get_service_account(request={"name": name}), retry_not_found=True
        )
    owner = f"(aipress-tenant-id={tenant_id})"
    if owner not in str(existing.get("description", "")):
        raise ApplyFailed(f"service account {email} exists but is not tenant {tenant_id}'s")
    return email
