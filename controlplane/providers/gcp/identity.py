"""One service account per tenant: the identity its Cloud Run services run as.

Per tenant, not per site: a project holds 100 service accounts by default, so one per site
would cap the platform near 100 sites per project, while one per tenant keeps tenants apart
(a site can read only its own tenant's secrets and buckets) and lets a tenant's sites share
an identity, which they may: they have one owner. The account is made on the tenant's first
site and kept for its later ones.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from google.api_core import exceptions
from google.iam.v1 import policy_pb2

from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.base import GcpClients

IAM_API = "https://iam.googleapis.com"


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


def ensure_tenant_account(clients: GcpClients, project: str, tenant_id: str) -> str:
    """Create the tenant's account if it does not exist; return its e-mail."""
    email = tenant_account(project, tenant_id)
    try:
        existing = clients.iam.get_service_account(
            request={"name": f"projects/{project}/serviceAccounts/{email}"}
        )
        owner = f"(aipress-tenant-id={tenant_id})"
        if owner not in str(existing.get("description", "")):
            raise ApplyFailed(f"service account {email} exists but is not tenant {tenant_id}'s")
    except exceptions.NotFound:
        with contextlib.suppress(
            exceptions.Conflict
        ):  # ALREADY_EXISTS (409): a concurrent first site
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
    grant_project_roles(clients, project, f"serviceAccount:{email}")
    return email


# What a tenant's runtime needs project-wide (Cloud SQL IAM is project-level only). The
# control plane may grant exactly these and nothing else (an IAM condition in terraform/).
RUNTIME_ROLES = (
    "roles/cloudsql.client",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
)


def grant_project_roles(clients: GcpClients, project: str, member: str) -> None:
    """Add `member` to the runtime roles in the project's policy (read-modify-write)."""
    resource = f"projects/{project}"
    # The project policy holds a conditional binding (terraform/): read and write version 3.
    policy = clients.projects.get_iam_policy(
        request={"resource": resource, "options": {"requested_policy_version": 3}}
    )
    policy.version = 3
    changed = False
    for role in RUNTIME_ROLES:
        binding = next(
            (b for b in policy.bindings if b.role == role and not b.condition.expression), None
        )
        if binding is None:
            policy.bindings.append(policy_pb2.Binding(role=role, members=[member]))
            changed = True
        elif member not in binding.members:
            binding.members.append(member)
            changed = True
    if changed:
        clients.projects.set_iam_policy(request={"resource": resource, "policy": policy})
