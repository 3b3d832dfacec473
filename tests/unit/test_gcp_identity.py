"""A tenant's runtime account: granted the runtime's three project roles and nothing else,
whatever the project's policy already holds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from google.iam.v1 import policy_pb2
from google.type import expr_pb2

from controlplane.providers.gcp.identity import RUNTIME_ROLES, grant_project_roles

MEMBER = "serviceAccount:aipress-t-acme@p.iam.gserviceaccount.com"


class FakeProjects:
    """get/set of one project's IAM policy, as resourcemanager_v3.ProjectsClient."""

    def __init__(self, policy: policy_pb2.Policy) -> None:
        self.policy = policy
        self.writes = 0

    def get_iam_policy(self, request: dict[str, Any]) -> policy_pb2.Policy:
        copy = policy_pb2.Policy()
        copy.CopyFrom(self.policy)
        return copy

    def set_iam_policy(self, request: dict[str, Any]) -> policy_pb2.Policy:
        self.policy = request["policy"]
        self.writes += 1
        return self.policy


def test_a_tenant_account_gets_the_runtime_roles_only() -> None:
    conditioned = policy_pb2.Binding(
        role="roles/cloudsql.client",
        members=["serviceAccount:other@p.iam.gserviceaccount.com"],
        condition=expr_pb2.Expr(expression="request.time < timestamp('2030-01-01T00:00:00Z')"),
    )
    minting = policy_pb2.Binding(
        role="roles/iam.serviceAccountTokenCreator",
        members=["serviceAccount:aipress-control-plane@p.iam.gserviceaccount.com"],
    )
    projects = FakeProjects(policy_pb2.Policy(bindings=[conditioned, minting]))
    clients = cast(Any, SimpleNamespace(projects=projects))
    grant_project_roles(clients, "p", MEMBER)
    grant_project_roles(clients, "p", MEMBER)  # idempotent: nothing more to write
    assert projects.writes == 1
    held = {b.role for b in projects.policy.bindings if MEMBER in b.members}
    assert held == set(RUNTIME_ROLES) == {
        "roles/cloudsql.client", "roles/logging.logWriter", "roles/monitoring.metricWriter"}  # fmt: skip
    for binding in projects.policy.bindings:
        if binding.condition.expression:  # a conditional grant is never widened
            assert MEMBER not in binding.members
        if binding.role.startswith("roles/iam."):
            assert MEMBER not in binding.members
