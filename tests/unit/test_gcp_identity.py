"""A tenant's runtime account: granted the runtime's one project role and nothing else,
whatever the project's policy already holds; a full policy is refused before it is sent."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from google.iam.v1 import policy_pb2
from google.type import expr_pb2

from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.identity import (
    POLICY_PRINCIPAL_LIMIT,
    RUNTIME_ROLES,
    grant_project_roles,
)

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
    assert held == set(RUNTIME_ROLES) == {"roles/cloudsql.client"}
    for binding in projects.policy.bindings:
        if binding.condition.expression:  # a conditional grant is never widened
            assert MEMBER not in binding.members
        if binding.role.startswith("roles/iam."):
            assert MEMBER not in binding.members


def test_a_policy_at_the_principal_limit_takes_no_new_tenant() -> None:
    members = [f"user:u{i}@example.com" for i in range(POLICY_PRINCIPAL_LIMIT - 1)]
    projects = FakeProjects(policy_pb2.Policy(bindings=[
        policy_pb2.Binding(role="roles/viewer", members=members)]))  # fmt: skip
    clients = cast(Any, SimpleNamespace(projects=projects))
    grant_project_roles(clients, "p", MEMBER)  # the 1,500th principal fits
    assert projects.writes == 1
    with pytest.raises(ApplyFailed, match=r"IAM policy is full \(1500 principals\): this cell"):
        grant_project_roles(clients, "p", "serviceAccount:aipress-t-next@p.iam.gserviceaccount.com")
    assert projects.writes == 1  # nothing sent
