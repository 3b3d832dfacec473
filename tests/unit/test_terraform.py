"""Static checks of terraform/: labels everywhere they are taken, no owner/editor grants,
a private control plane, and `terraform fmt` (when the binary is on the machine)."""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

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
    "google_dns_managed_zone": ("labels",),
}
# Resources that take no labels at all (their Google API has none).
UNLABELLED = {
    "google_project_service", "google_service_account", "google_project_iam_member",
    "google_service_account_iam_member",
    "google_bigquery_dataset_iam_member", "google_sql_database", "google_sql_user",
    "google_secret_manager_secret_iam_member", "google_cloud_run_v2_service_iam_member",
    "google_cloud_run_v2_job_iam_member", "google_cloud_scheduler_job",
    "google_identity_platform_config", "google_secret_manager_secret_version", "random_password",
    "google_compute_network", "google_compute_subnetwork", "google_compute_router",
    "google_compute_router_nat", "google_compute_url_map", "google_compute_target_https_proxy",
    "google_compute_target_http_proxy", "random_id", "google_apikeys_key",
    "google_storage_bucket_iam_member", "google_compute_region_network_endpoint_group",
    "google_compute_backend_service", "google_service_networking_connection",
    "google_compute_firewall",
}  # fmt: skip


@functools.cache
def _parse(text: str) -> dict[str, Any]:
    return hcl2.loads(text)


def _load(handle: TextIO) -> dict[str, Any]:
    """hcl2.load, parsed once per file content (python-hcl2 is slow), a fresh copy each call."""
    return copy.deepcopy(_parse(handle.read()))


def _unquote(value: Any) -> Any:
    return value.strip('"') if isinstance(value, str) else value


def resources() -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource in terraform/*.tf."""
    found = []
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            parsed = _load(handle)
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
        parsed = _load(handle)
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


def test_no_one_may_change_the_project_policy() -> None:
    """Tenants hold no project-level role, so nothing needs to write the project's policy
    (which would also cap a project at 1,500 principals)."""
    granted = [role for kind, _name, body in resources() if kind == "google_project_iam_member"
               for role in _roles_of(body)]  # fmt: skip
    assert granted and "roles/resourcemanager.projectIamAdmin" not in granted
    assert "roles/iam.securityAdmin" not in granted


def test_the_control_plane_is_not_publicly_invokable_and_the_chatbot_is() -> None:
    bindings = [(name, body) for kind, name, body in resources()
                if kind == "google_cloud_run_v2_service_iam_member"]  # fmt: skip
    # No allUsers/allAuthenticatedUsers anywhere: Domain Restricted Sharing refuses them.
    members = [_unquote(b["member"]) for _, b in bindings]
    assert not [m for m in members if m in ("allUsers", "allAuthenticatedUsers")], members
    services = {name: body for kind, name, body in resources()
                if kind == "google_cloud_run_v2_service"}  # fmt: skip
    open_to_all = {n for n, b in services.items() if b.get("invoker_iam_disabled") is True}
    assert open_to_all == {"chatbot", "stopped_page"}
    control = [body for _, body in bindings if "control_plane" in str(body["name"])]
    assert [_unquote(b["member"]) for b in control] == [
        "serviceAccount:${google_service_account.chatbot.email}"
    ]


def _members(body: Any) -> list[str]:
    """Every principal a resource body names (`member`, `members`), however deep."""
    if isinstance(body, dict):
        found = [_unquote(body[k]) for k in ("member",) if isinstance(body.get(k), str)]
        found += [_unquote(m) for m in body.get("members") or [] if isinstance(m, str)]
        return found + [m for v in body.values() for m in _members(v)]
    if isinstance(body, list):
        return [m for v in body for m in _members(v)]
    return []


def test_nothing_is_granted_to_all_users() -> None:
    """Domain Restricted Sharing (enforced by default in new organisations) refuses allUsers
    and allAuthenticatedUsers in every IAM policy: the first apply would fail on one."""
    granted = [(kind, name, member) for kind, name, body in resources()
               for member in _members(body) if member in ("allUsers", "allAuthenticatedUsers")]  # fmt: skip
    assert granted == []


def test_the_stopped_page_is_a_public_service_only_the_load_balancer_reaches() -> None:
    """A stopped site's host rule leads to the backend the control plane is told of: a
    serverless NEG of a shared Cloud Run service, public without IAM, admitting the load
    balancer only, uncached, running the platform's stopped page as an account with no role."""
    from controlplane.settings import Settings

    found = _by_key()
    kind, _, name = Settings.model_fields["front_door_stopped_backend"].default.partition("/")
    assert kind == "backendServices"
    [(key, backend)] = [(n, b) for (k, n), b in found.items()
                        if k == "google_compute_backend_service" and _unquote(b["name"]) == name]  # fmt: skip
    assert backend["enable_cdn"] is False
    assert _unquote(backend["load_balancing_scheme"]) == "EXTERNAL_MANAGED"
    neg = found[("google_compute_region_network_endpoint_group", "stopped_page")]
    assert "google_compute_region_network_endpoint_group.stopped_page.id" in str(backend)
    assert _unquote(neg["network_endpoint_type"]) == "SERVERLESS"
    assert "google_cloud_run_v2_service.stopped_page.name" in str(neg["cloud_run"])
    service = found[("google_cloud_run_v2_service", "stopped_page")]
    assert _unquote(service["ingress"]) == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    assert service["invoker_iam_disabled"] is True
    [container] = _get(service, ("template", "containers"))
    assert [_unquote(c) for c in container["command"]] == [
        "python", "-m", "controlplane.stopped_page"
    ]  # fmt: skip
    assert (TERRAFORM.parent / "controlplane/stopped_page.py").exists()
    account = "google_service_account.stopped_page"
    assert account in str(_get(service, ("template", "service_account")))
    assert not [(k, n) for (k, n), b in found.items()
                if k.endswith("_iam_member") and account in str(b.get("member"))]  # fmt: skip
    assert key == "stopped"


def test_only_the_chatbot_has_a_route_to_the_control_plane() -> None:
    """Internal ingress, reached through the platform VPC; tenants' services are on the
    sites' own network, which is not peered with it."""
    services = {name: body for kind, name, body in resources()
                if kind == "google_cloud_run_v2_service"}  # fmt: skip
    assert _unquote(services["control_plane"]["ingress"]) == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    access = _get(services["chatbot"], ("template", "vpc_access"))
    assert _unquote(_get(access, ("egress",))) == "ALL_TRAFFIC"
    subnets = {n: b for k, n, b in resources() if k == "google_compute_subnetwork"}
    assert subnets["platform"]["private_ip_google_access"] is True
    assert "google_compute_network.sites.id" in str(subnets["sites"]["network"])
    assert not [n for k, n, _ in resources() if k == "google_compute_network_peering"]
    runtime = (TERRAFORM.parent / "controlplane/providers/gcp/runtime.py").read_text()
    assert "platform" not in re.findall(r"subnetwork=self\.settings\.(\w+)", runtime)


def test_sites_reach_cloud_sql_privately_and_nothing_else_private() -> None:
    """Cloud SQL has a private IP in the sites' network; the firewall lets the sites' tag
    reach port 3306 of that range only and denies every other private destination."""
    [sql] = [b for k, n, b in resources() if k == "google_sql_database_instance" and n == "shared"]
    private_network = _get(sql, ("settings", "ip_configuration", "private_network"))
    assert "google_compute_network.sites.id" in str(private_network)
    ssl_mode = _get(sql, ("settings", "ip_configuration", "ssl_mode"))
    assert _unquote(ssl_mode) == "ENCRYPTED_ONLY"
    walls = {n: b for k, n, b in resources() if k == "google_compute_firewall"}
    allow, deny = walls["sites_to_sql"], walls["sites_deny_private"]
    assert allow["priority"] < deny["priority"]
    assert _unquote(allow["direction"]) == _unquote(deny["direction"]) == "EGRESS"
    assert "sites_sql" in str(allow["destination_ranges"])
    assert "3306" in str(allow["allow"]) and "tcp" in str(allow["allow"])
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= {
        _unquote(r) for r in deny["destination_ranges"]
    }
    assert str(allow["target_tags"]) == str(deny["target_tags"])
    env = str(_locals()["control_plane_env"])
    assert re.search(r"AIPRESS_CLOUDSQL_PRIVATE_IP[^,]*private_ip_address", env), env
    assert re.search(r"AIPRESS_SITES_SUBNETWORK[^,]*google_compute_subnetwork\.sites\.id", env)


def test_variables_are_validated() -> None:
    with (TERRAFORM / "variables.tf").open() as handle:
        variables = {
            _unquote(k): v for block in _load(handle)["variable"] for k, v in block.items()
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


CHATBOT = "serviceAccount:${google_service_account.chatbot.email}"


def test_only_the_control_plane_can_act_as_or_mint_for_service_accounts() -> None:
    seen = resources()
    # One grant on a single service account: the chatbot may sign as itself (the Firebase
    # custom tokens of MCP callers), on its own account only. No other actAs or minting.
    single = [(name, body) for kind, name, body in seen
              if kind.startswith("google_service_account_iam")]  # fmt: skip
    assert [name for name, _ in single] == ["chatbot_signs_as_itself"]
    signs = single[0][1]
    assert _unquote(signs["service_account_id"]) == "${google_service_account.chatbot.name}"
    assert _unquote(signs["member"]) == CHATBOT
    assert _unquote(signs["role"]) == "roles/iam.serviceAccountTokenCreator"
    for kind, name, body in seen:
        if kind.startswith("google_service_account_iam"):
            continue
        if not kind.endswith("_iam_member"):
            continue
        for role in _roles_of(body):
            if role in MINTING_ROLES:
                assert _unquote(body["member"]) == CONTROL_PLANE, f"{kind}.{name} grants {role}"


def test_the_gcp_provider_grants_tenants_nothing_that_mints() -> None:
    """Every role the provider's code can grant: read of its own secrets, write of its own
    bucket, read of the platform catalogue (packages.py), and the invoker of its service;
    nothing on the project."""
    allowed = {
        "roles/secretmanager.secretAccessor",
        "roles/storage.objectAdmin",
        "roles/storage.objectViewer",
        "roles/run.invoker",
    }
    source = TERRAFORM.parent / "controlplane" / "providers" / "gcp"
    found = {role for path in source.glob("*.py")
             for role in re.findall(r"roles/[A-Za-z0-9_.]+", path.read_text())}  # fmt: skip
    assert found and found <= allowed, found - allowed
    assert "actAs" not in "".join(p.read_text() for p in source.glob("*.py"))


def _scheduled_job(key: str) -> dict[str, Any]:
    """One entry of local.scheduled_jobs (a Cloud Run job, its invoker and its schedule)."""
    job: dict[str, Any] = _locals()["scheduled_jobs"][key]
    return job


def test_scheduled_jobs_run_their_module_on_their_schedule_as_the_scheduler() -> None:
    """The job, the scheduler's invoker binding and the schedule are one instance each per
    entry of local.scheduled_jobs, and each runs `python -m <module>` of that entry."""
    found = _by_key()
    job = found[("google_cloud_run_v2_job", "scheduled")]
    [container] = _get(job, ("template", "template", "containers"))
    assert [_unquote(c) for c in container["command"]] == ["python", "-m", "${each.value.module}"]
    assert "each.value.env" in str(container["dynamic"])
    schedule = found[("google_cloud_scheduler_job", "scheduled")]
    assert job["for_each"] == schedule["for_each"] == "${local.scheduled_jobs}"
    assert _unquote(schedule["schedule"]) == "${each.value.schedule}"
    uri = str(_get(schedule, ("http_target", "uri")))
    assert "google_cloud_run_v2_job.scheduled[each.key].name" in uri
    assert "google_service_account.scheduler.email" in str(
        _get(schedule, ("http_target", "oauth_token"))
    )
    invoker = found[("google_cloud_run_v2_job_iam_member", "scheduler_runs")]
    assert invoker["for_each"] == "${google_cloud_run_v2_job.scheduled}"
    assert _unquote(invoker["role"]) == "roles/run.invoker"
    assert "google_service_account.scheduler.email" in str(invoker["member"])
    assert set(_locals()["scheduled_jobs"]) == {"billing", "cron", "backups"}
    for key in ("billing", "cron", "backups"):
        module = _unquote(_scheduled_job(key)["module"])
        assert module == f"controlplane.{key}"
        assert (TERRAFORM.parent / "controlplane" / key).is_dir() or (
            TERRAFORM.parent / "controlplane" / f"{key}.py"
        ).exists(), module


def test_a_scheduled_cron_job_runs_the_platforms_cron() -> None:
    cron = _scheduled_job("cron")
    assert _unquote(cron["module"]) == "controlplane.cron"
    assert "AIPRESS_CRON_INTERVAL_SECONDS" in str(cron["env"])
    assert "cron_interval_minutes" in str(cron["schedule"])
    assert "google_service_account.cron_job.email" in str(cron["service_account"])


def test_an_hourly_backups_job_runs_the_platforms_backups_with_only_what_it_needs() -> None:
    found = _by_key()
    backups = _scheduled_job("backups")
    assert _unquote(backups["module"]) == "controlplane.backups"
    assert "local.job_env.backups" in str(backups["env"])
    assert "backups_job" in str(backups["service_account"])
    assert _unquote(backups["schedule"]) == "${var.backups_schedule}"
    with (TERRAFORM / "variables.tf").open() as handle:
        blocks = {_unquote(k): v for b in _load(handle)["variable"] for k, v in b.items()}
    minute, hour, *_rest = _unquote(blocks["backups_schedule"]["default"]).split()
    assert minute.isdigit() and hour == "*"  # hourly: each site's policy picks its own time
    # It writes only the backups bucket (a bucket-level grant) and reads the sites' buckets;
    # it holds no admin role of any service.
    roles = str(found[("google_project_iam_member", "backups_job")]["for_each"])
    assert "admin" not in roles.lower() and "roles/storage.objectViewer" in roles
    writer = found[("google_storage_bucket_iam_member", "backups_job_writes_backups")]
    assert "google_storage_bucket.backups.name" in str(writer["bucket"])
    assert _unquote(writer["role"]) == "roles/storage.objectAdmin"


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
        env = str(_load(handle)["locals"])
    assert "AIPRESS_FRONT_DOOR_IPV4" in env and "sites_ipv4" in env


# --- A first `terraform apply` that works: secrets, env, Cloud SQL ---------------------------

WORKLOADS = ("google_cloud_run_v2_service", "google_cloud_run_v2_job")
# reads no settings (controlplane/stopped_page.py)
STATIC_SERVICES = {"google_cloud_run_v2_service.stopped_page"}


def _by_key() -> dict[tuple[str, str], dict[str, Any]]:
    return {(kind, name): body for kind, name, body in resources()}


def _locals() -> dict[str, Any]:
    found: dict[str, Any] = {}
    with (TERRAFORM / "main.tf").open() as handle:
        for block in _load(handle).get("locals", []):
            found.update(block)
    return found


def _expanded(text: str) -> str:
    """`text` followed by every local it names, and every local those name, spelled out."""
    values, seen = _locals(), set[str]()
    while names := {n for n in re.findall(r"local\.(\w+)", text) if n in values} - seen:
        for name in sorted(names):
            seen.add(name)
            text += " " + str(values[name])
    return text


@dataclass(frozen=True)
class Workload:
    """A Cloud Run service, or one scheduled job, with the locals it uses spelled out."""

    label: str
    text: str
    account: str
    depends: str


def _workloads() -> list[Workload]:
    """Every Cloud Run service, and each entry of the job resource's local.scheduled_jobs."""
    found = []
    for (kind, name), body in _by_key().items():
        if kind not in WORKLOADS:
            continue
        depends = " ".join(str(d) for d in body.get("depends_on", []))
        if kind == "google_cloud_run_v2_service":
            account = str(_get(body, ("template", "service_account")))
            found.append(Workload(f"{kind}.{name}", _expanded(str(body)), account, depends))
            continue
        assert body["for_each"] == "${local.scheduled_jobs}", f"{kind}.{name} is not scheduled"
        for key, job in _locals()["scheduled_jobs"].items():
            # The entry alone names the job's locals: the body's would be every job's.
            text = str(body) + " " + _expanded(str(job))
            label = f"{kind}.{name}[{key}]"
            found.append(Workload(label, text, str(job["service_account"]), depends))
    return found


def _variable_default(name: str) -> Any:
    with (TERRAFORM / "variables.tf").open() as handle:
        for block in _load(handle)["variable"]:
            for key, value in block.items():
                if _unquote(key) == name:
                    return _unquote(value.get("default"))
    raise KeyError(name)


def _workload_of(text: str) -> str:
    if "local.job_env" in text:
        return "job"
    match = re.search(r"'name': '\"AIPRESS_WORKLOAD\"', 'value': '\"(\w+)\"'", text)
    return match.group(1) if match else "control_plane"


def test_every_secret_a_workload_reads_has_a_version_it_may_access_first() -> None:
    found = _by_key()
    versions = {
        re.sub(r"\$\{google_secret_manager_secret\.(\w+)\.id\}", r"\1", str(b["secret"])): n
        for (k, n), b in found.items() if k == "google_secret_manager_secret_version"
    }  # fmt: skip
    checked = 0
    for workload in _workloads():
        label, account, depends = workload.label, workload.account, workload.depends
        needs = set(re.findall(r"google_secret_manager_secret\.(\w+)\.secret_id", workload.text))
        for secret in needs:
            checked += 1
            assert secret in versions, f"{label} reads {secret}, which has no version"
            assert f"google_secret_manager_secret_version.{versions[secret]}" in depends, (
                f"{label} must depend on {secret}'s version"
            )
            readers = [n for (k, n), b in found.items()
                       if k == "google_secret_manager_secret_iam_member"
                       and f"google_secret_manager_secret.{secret}.id"
                       in str(b["secret_id"]) + str(b.get("for_each", ""))
                       and account.strip("${}") in str(b["member"])]  # fmt: skip
            assert readers, f"{label}'s account cannot read {secret}"
            assert any(f"google_secret_manager_secret_iam_member.{r}" in depends for r in readers)
    assert checked == 9  # control plane 3, chatbot 2, billing and cron 1 each, backups 2


def test_every_env_a_workload_needs_in_gcp_mode_is_set() -> None:
    from controlplane.kernel.settings import GCP_REQUIRED
    from controlplane.settings import GCP_DNS_REQUIRED, GCP_PROVIDER_REQUIRED

    seen = set()
    for found in _workloads():
        if found.label in STATIC_SERVICES:
            continue
        text, workload = found.text, _workload_of(found.text)
        seen.add(workload)
        assert "AIPRESS_PROVIDER" in text and '"gcp"' in text
        required = GCP_REQUIRED[workload]
        if workload != "chatbot":  # the control plane and the jobs build the gcp provider
            required = required + GCP_PROVIDER_REQUIRED
        if workload == "control_plane":  # only the control plane changes DNS
            required += tuple(f for fields in GCP_DNS_REQUIRED.values() for f in fields)
        for entry in required:
            names = [f"AIPRESS_{field.upper()}" for field in entry.split("|")]
            assert any(re.search(rf"\b{n}\b", text) for n in names), (
                f"{found.label} ({workload}) sets none of {names}"
            )
    assert seen == set(GCP_REQUIRED)


_TIERS = {
    "ENTERPRISE": r"db-(f1-micro|g1-small|custom-[0-9]+-[0-9]+|n1-(standard|highmem)-[0-9]+)",
    "ENTERPRISE_PLUS": r"db-perf-optimized-N-[0-9]+",
}


def test_every_cloud_sql_instance_has_a_valid_edition_and_tier() -> None:
    """The API defaults the edition by version (PostgreSQL 16: ENTERPRISE_PLUS, which has no
    shared-core or custom tier): the edition is explicit and the tier one it offers."""
    instances = [(n, b) for (k, n), b in _by_key().items() if k == "google_sql_database_instance"]
    assert len(instances) == 2
    for name, body in instances:
        edition = _unquote(_get(body, ("settings", "edition")))
        assert edition in _TIERS, f"{name}: set settings.edition (ENTERPRISE or ENTERPRISE_PLUS)"
        tier = str(_get(body, ("settings", "tier")))
        variable = re.fullmatch(r"\$\{var\.(\w+)\}", tier)
        tier = _variable_default(variable.group(1)) if variable else _unquote(tier)
        assert re.fullmatch(_TIERS[edition], tier), f"{name}: {tier} is not an {edition} tier"
    with (TERRAFORM / "variables.tf").open() as handle:
        blocks = {_unquote(k): v for b in _load(handle)["variable"] for k, v in b.items()}
    for variable_name in ("sql_tier", "chat_sql_tier"):
        condition = str(blocks[variable_name]["validation"][0]["condition"])
        pattern = re.search(r'regex\("(.+?)", var', condition)
        assert pattern, condition
        allowed = pattern.group(1).replace("\\\\", "\\")
        assert re.search(allowed, "db-custom-2-7680")
        assert not re.search(allowed, "db-perf-optimized-N-8")  # an Enterprise Plus tier


def test_the_platforms_identities_log_in_to_cloud_sql_as_iam_users() -> None:
    found = _by_key()
    iam_users = found[("google_sql_user", "iam")]
    assert _unquote(iam_users["type"]) == "CLOUD_IAM_SERVICE_ACCOUNT"
    # MySQL: the full e-mail (the trimsuffix form is PostgreSQL's).
    assert "trimsuffix" not in str(iam_users) and "_email" not in str(iam_users["name"])
    accounts = re.findall(r"google_service_account\.(\w+)\.email", str(iam_users["for_each"]))
    assert set(accounts) == {"control_plane", "billing_job", "cron_job", "backups_job"}
    for account in accounts:  # IAM database login needs cloudsql.instanceUser
        # (the control plane has a second set of grants: the front door's, in frontdoor.tf)
        grants = [b for (k, n), b in found.items() if k == "google_project_iam_member"
                  and f"google_service_account.{account}.email" in str(b["member"])
                  and "for_each" in b]  # fmt: skip
        assert any("roles/cloudsql.instanceUser" in str(g["for_each"]) for g in grants), account
    # Each job connects as its own database user, not the control plane's.
    job_env = str(_locals()["job_env"])
    assert "local.sql_users.billing_job" in job_env and "local.sql_users.cron_job" in job_env
    assert "local.sql_users.backups_job" in job_env
    assert 'split("@"' in str(_locals()["sql_users"])


def test_the_default_dns_provider_gets_a_zone_and_cloudflare_its_token() -> None:
    found = _by_key()
    zone = found[("google_dns_managed_zone", "sites")]
    assert "clouddns" in str(zone["count"]) and "platform_domain" in str(zone["dns_name"])
    env = str(_locals()["control_plane_env"])
    assert "google_dns_managed_zone.sites[0].name" in env and "var.cloudflare_zone_id" in env
    token = found[("google_secret_manager_secret_version", "cloudflare_token")]
    assert "var.cloudflare_api_token" in str(token["secret_data"])
    assert "precondition" in str(token["lifecycle"])


def test_the_chatbot_gets_only_env_its_settings_read_and_its_own_signing_key() -> None:
    from chatbot.settings import ChatSettings

    found = _by_key()
    chatbot = found[("google_cloud_run_v2_service", "chatbot")]
    env = _get(chatbot, ("template", "containers", "env"))
    names = {_unquote(e["name"]) for e in (env if isinstance(env, list) else [env])}
    # An env the chat service has no field for is ignored there: a secret passed that way is
    # a grant for nothing (the keyring once was).
    fields = {f"AIPRESS_{name.upper()}" for name in ChatSettings.model_fields}
    # AIPRESS_WORKLOAD only labels the service for these tests (the control plane reads it).
    assert names - fields == {"AIPRESS_WORKLOAD"}, names - fields
    assert "AIPRESS_ENCRYPTION_KEYS" not in names and "AIPRESS_MCP_SIGNING_KEY" in names
    readers = {_unquote(str(b["member"])) for (k, _), b in found.items()
               if k == "google_secret_manager_secret_iam_member"
               and "mcp_signing_key" in str(b["secret_id"]) + str(b.get("for_each", ""))}  # fmt: skip
    assert readers == {"serviceAccount:${google_service_account.chatbot.email}"}
    keyring = {str(b["member"]) for (k, _), b in found.items()
               if k == "google_secret_manager_secret_iam_member"
               and "encryption_keys" in str(b["secret_id"]) + str(b.get("for_each", ""))}  # fmt: skip
    assert not any("chatbot" in member for member in keyring), keyring


def _address(value: str) -> str:
    """A moved block's address as python-hcl2 gives it (`${...}`), bare."""
    return str(_unquote(value)).removeprefix("${").removesuffix("}")


def test_every_moved_block_leads_from_a_gone_resource_to_a_defined_one() -> None:
    """State written before a resource became a for_each keeps its objects: each `moved`
    goes from an address no resource has any more to an instance of one the module defines."""
    defined = {f"{kind}.{name}" for kind, name, _ in resources()}
    moves = []
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            blocks = _load(handle).get("moved", [])
        moves += [(_address(b["from"]), _address(b["to"])) for b in blocks]
    assert len(moves) >= 13  # the scheduled jobs' nine, the front door's four
    for source, target in moves:
        assert source.split("[")[0] not in defined, source
        assert target.split("[")[0] in defined and "[" in target, target
    # The front door's rules keep their names: aipress-sites-<port>-<address>.
    assert ("google_compute_global_forwarding_rule.sites_https[\"ipv4\"]",
            "google_compute_global_forwarding_rule.sites[\"https-ipv4\"]") in moves  # fmt: skip
