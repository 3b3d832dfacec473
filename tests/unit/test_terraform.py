"""Static checks of terraform/: labels everywhere they are taken, no owner/editor grants,
a private control plane, and `terraform fmt` (when the binary is on the machine)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
# Google resources in our Terraform that accept labels, and where the labels go.
LABELLED = {
    "google_sql_database_instance": ("settings", "user_labels"),
    "google_artifact_registry_repository": ("labels",),
    "google_secret_manager_secret": ("labels",),
    "google_cloud_run_v2_service": ("labels",),
    "google_cloud_run_v2_job": ("labels",),
    "google_bigquery_dataset": ("labels",),
    "google_storage_bucket": ("labels",),
    "google_compute_global_address": ("labels",),
    "google_compute_global_forwarding_rule": ("labels",),
    "google_certificate_manager_dns_authorization": ("labels",),
    "google_certificate_manager_certificate": ("labels",),
    "google_certificate_manager_certificate_map": ("labels",),
    "google_certificate_manager_certificate_map_entry": ("labels",),
}
# Resources that take no labels at all (their Google API has none).
UNLABELLED = {
    "google_project_service", "google_service_account", "google_project_iam_member",
    "google_bigquery_dataset_iam_member", "google_sql_database", "google_sql_user",
    "google_secret_manager_secret_iam_member", "google_cloud_run_v2_service_iam_member",
    "google_cloud_run_v2_job_iam_member", "google_cloud_scheduler_job",
    "google_identity_platform_config", "google_secret_manager_secret_version", "random_password",
    "google_compute_network", "google_compute_subnetwork", "google_compute_router",
    "google_compute_router_nat", "google_compute_url_map", "google_compute_target_https_proxy",
    "google_compute_target_http_proxy",
}  # fmt: skip


def _unquote(value: Any) -> Any:
    return value.strip('"') if isinstance(value, str) else value


def resources() -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource in terraform/*.tf."""
    found = []
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    found.append((_unquote(kind), _unquote(name), body))
    return found


def _get(body: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(body, list):
            body = body[0] if body else None
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def test_every_resource_that_takes_labels_has_them() -> None:
    seen = resources()
    assert len(seen) > 20
    for kind, name, body in seen:
        if kind in LABELLED:
            labels = _get(body, LABELLED[kind])
            assert labels == "${local.labels}", f"{kind}.{name} has no labels"
        else:
            assert kind in UNLABELLED, f"{kind}.{name}: add it to LABELLED or UNLABELLED"


def test_labels_carry_the_tenant_key() -> None:
    with (TERRAFORM / "main.tf").open() as handle:
        parsed = hcl2.load(handle)
    merged = str(parsed["locals"][0]["labels"])
    assert "aipress-tenant-id" in merged and "platform" in merged


def test_no_service_account_is_made_owner_or_editor() -> None:
    for kind, name, body in resources():
        if not kind.endswith("_iam_member"):
            continue
        roles = body.get("for_each") or body.get("role")
        text = str(roles)
        for forbidden in ("roles/owner", "roles/editor", "roles/iam.securityAdmin"):
            assert forbidden not in text, f"{kind}.{name} grants {forbidden}"


def test_iam_admin_is_conditioned_to_the_runtime_roles() -> None:
    grants = [body for kind, _name, body in resources()
              if kind == "google_project_iam_member" and "projectIamAdmin" in str(body["role"])]  # fmt: skip
    assert len(grants) == 1
    expression = str(grants[0]["condition"])
    assert "modifiedGrantsByRole" in expression and "hasOnly" in expression
    for role in (
        "roles/cloudsql.client",
        "roles/logging.logWriter",
        "roles/monitoring.metricWriter",
    ):
        assert role in expression


def test_the_control_plane_is_not_publicly_invokable_and_the_chatbot_is() -> None:
    bindings = [(name, body) for kind, name, body in resources()
                if kind == "google_cloud_run_v2_service_iam_member"]  # fmt: skip
    public = {str(body["name"]) for _, body in bindings if "allUsers" in str(body["member"]) or
              "allAuthenticatedUsers" in str(body["member"])}  # fmt: skip
    assert public == {"${google_cloud_run_v2_service.chatbot.name}"}
    control = [body for _, body in bindings if "control_plane" in str(body["name"])]
    assert [_unquote(b["member"]) for b in control] == [
        "serviceAccount:${google_service_account.chatbot.email}"
    ]


def test_only_the_chatbot_has_a_route_to_the_control_plane() -> None:
    """Internal ingress, reached through the platform VPC; tenants' services have no VPC."""
    services = {name: body for kind, name, body in resources()
                if kind == "google_cloud_run_v2_service"}  # fmt: skip
    assert _unquote(services["control_plane"]["ingress"]) == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    access = _get(services["chatbot"], ("template", "vpc_access"))
    assert _unquote(_get(access, ("egress",))) == "ALL_TRAFFIC"
    [subnet] = [b for k, _n, b in resources() if k == "google_compute_subnetwork"]
    assert subnet["private_ip_google_access"] is True
    runtime = (TERRAFORM.parent / "controlplane/providers/gcp/runtime.py").read_text()
    assert "vpc_access" not in runtime and "VpcAccess" not in runtime


def test_variables_are_validated() -> None:
    with (TERRAFORM / "variables.tf").open() as handle:
        variables = {
            _unquote(k): v for block in hcl2.load(handle)["variable"] for k, v in block.items()
        }
    for name in ("project_id", "region", "platform_domain", "sql_tier", "dns_provider"):
        assert "validation" in variables[name], f"variable {name} has no validation"


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on this machine")
def test_terraform_fmt() -> None:
    result = subprocess.run(["terraform", "fmt", "-check", "-recursive", str(TERRAFORM)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# Roles with which a member can act as, or mint credentials for, a service account (or
# grant itself anything): a tenant's runtime account must never hold one.
MINTING_ROLES = (
    "roles/iam.serviceAccountTokenCreator", "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountKeyAdmin", "roles/iam.serviceAccountOpenIdTokenCreator",
    "roles/iam.workloadIdentityUser", "roles/iam.serviceAccountAdmin",
    "roles/resourcemanager.projectIamAdmin", "roles/owner", "roles/editor",
)  # fmt: skip
CONTROL_PLANE = "serviceAccount:${google_service_account.control_plane.email}"


def _roles_of(body: dict[str, Any]) -> list[str]:
    text = str(body.get("for_each") or "") + " " + str(body.get("role") or "")
    return re.findall(r"roles/[A-Za-z0-9_.]+", text)


def test_only_the_control_plane_can_act_as_or_mint_for_service_accounts() -> None:
    seen = resources()
    # No grant on a single service account (actAs or token minting for that account).
    assert not [name for kind, name, _ in seen if kind.startswith("google_service_account_iam")]
    for kind, name, body in seen:
        if not kind.endswith("_iam_member"):
            continue
        for role in _roles_of(body):
            if role in MINTING_ROLES:
                assert _unquote(body["member"]) == CONTROL_PLANE, f"{kind}.{name} grants {role}"


def test_the_control_plane_may_grant_tenants_exactly_the_runtime_roles() -> None:
    from controlplane.providers.gcp.identity import RUNTIME_ROLES

    [grant] = [body for kind, _name, body in resources()
               if kind == "google_project_iam_member" and "projectIamAdmin" in str(body["role"])]  # fmt: skip
    expression = str(grant["condition"])
    listed = re.search(r"hasOnly\(\[([^\]]*)\]\)", expression)
    assert listed, expression
    assert set(re.findall(r"roles/[A-Za-z0-9_.]+", listed.group(1))) == set(RUNTIME_ROLES)
    assert set(RUNTIME_ROLES) == {
        "roles/cloudsql.client", "roles/logging.logWriter", "roles/monitoring.metricWriter"}  # fmt: skip
    assert not set(RUNTIME_ROLES) & set(MINTING_ROLES)


def test_the_gcp_provider_grants_tenants_nothing_that_mints() -> None:
    """Every role the provider's code can grant: the runtime's three on the project, read
    of its own secrets, write of its own bucket, and the public invoker of its service."""
    allowed = {
        "roles/cloudsql.client", "roles/logging.logWriter", "roles/monitoring.metricWriter",
        "roles/secretmanager.secretAccessor", "roles/storage.objectAdmin", "roles/run.invoker",
    }  # fmt: skip
    source = TERRAFORM.parent / "controlplane" / "providers" / "gcp"
    found = {role for path in source.glob("*.py")
             for role in re.findall(r"roles/[A-Za-z0-9_.]+", path.read_text())}  # fmt: skip
    assert found and found <= allowed, found - allowed
    assert "actAs" not in "".join(p.read_text() for p in source.glob("*.py"))


def test_a_scheduled_cron_job_runs_the_platforms_cron() -> None:
    found = {(kind, name): body for kind, name, body in resources()}
    job = found[("google_cloud_run_v2_job", "cron")]
    container = _get(job, ("template", "template", "containers"))
    assert [_unquote(c) for c in container[0]["command"]] == ["python", "-m", "controlplane.cron"]
    env = str(_get(job, ("template", "template", "containers"))[0]["dynamic"])
    assert "AIPRESS_CRON_INTERVAL_SECONDS" in env
    schedule = found[("google_cloud_scheduler_job", "cron")]
    assert "cron_interval_minutes" in str(schedule["schedule"])
    assert "google_cloud_run_v2_job.cron.name" in str(_get(schedule, ("http_target", "uri")))
    invoker = found[("google_cloud_run_v2_job_iam_member", "scheduler_runs_cron")]
    assert "google_service_account.scheduler.email" in str(invoker["member"])


def test_the_front_door_leaves_host_rules_to_the_control_plane() -> None:
    found = {(kind, name): body for kind, name, body in resources()}
    url_map = found[("google_compute_url_map", "sites")]
    assert "host_rule" in str(url_map["lifecycle"]) and "path_matcher" in str(url_map["lifecycle"])
    proxy = found[("google_compute_target_https_proxy", "sites")]
    assert "certificate_map" in proxy and "ssl_certificates" not in proxy
    rules = [b for (k, _), b in found.items() if k == "google_compute_global_forwarding_rule"]
    assert rules and all(_unquote(b["load_balancing_scheme"]) == "EXTERNAL_MANAGED" for b in rules)
    wildcard = found[("google_certificate_manager_certificate", "platform_wildcard")]
    assert "dns_authorizations" in str(wildcard["managed"])
    # The control plane is told the addresses it points preview names at.
    with (TERRAFORM / "main.tf").open() as handle:
        env = str(hcl2.load(handle)["locals"])
    assert "AIPRESS_FRONT_DOOR_IPV4" in env and "sites_ipv4" in env
