"""/v1/tenants/{tenant_id}/sites/{site}/domains"""

from __future__ import annotations

from fastapi import APIRouter, Response

from controlplane.api.deps import SiteCallDep
from controlplane.dnscheck import txt_check
from controlplane.models import Operation
from controlplane.platform import Platform
from controlplane.schemas import DomainChange, DomainCreate, DomainRead
from controlplane.services import domains as service
from controlplane.services import operations as operations_service

router = APIRouter(prefix="/v1/tenants/{tenant_id}/sites/{site}/domains", tags=["domains"])


@router.get("", response_model=list[DomainRead])
def list_domains(call: SiteCallDep) -> list[DomainRead]:
    """The site's custom domains: verified (served) and pending (with the record to create)."""
    return service.list_domains(
        call.session, principal=call.principal, tenant_id=call.tenant_id, site=call.site
    )


@router.post("", status_code=201, response_model=DomainRead)
def claim_domain(call: SiteCallDep, data: DomainCreate, response: Response) -> DomainRead:
    """Claim a custom domain: the answer names the TXT record that proves you control it."""
    claim, created = service.claim_domain(
        call.session, principal=call.principal, tenant_id=call.tenant_id, site=call.site,
        domain=data.domain, platform_domain=call.platform.settings.platform_domain,
    )  # fmt: skip
    if not created:
        response.status_code = 200
    return claim


@router.post("/{domain}/verify", status_code=202, response_model=DomainChange)
def verify_domain(call: SiteCallDep, domain: str) -> DomainChange:
    """Look the claim's TXT record up; once proven, the site is set to serve the domain."""
    claim, op = service.verify_domain(
        call.session, principal=call.principal, tenant_id=call.tenant_id, site=call.site,
        domain=domain, check=txt_check(call.platform.settings.dns_nameservers),
    )  # fmt: skip
    return _changed(call.platform, claim, op)


@router.delete("/{domain}", response_model=DomainChange)
def remove_domain(call: SiteCallDep, domain: str) -> DomainChange:
    """Drop a claim; a served domain stops being served (the operation applies that)."""
    claim, op = service.remove_domain(
        call.session, principal=call.principal, tenant_id=call.tenant_id, site=call.site,
        domain=domain,
    )  # fmt: skip
    return _changed(call.platform, claim, op)


def _changed(platform: Platform, claim: DomainRead, op: Operation | None) -> DomainChange:
    """Hand the serving change (if any) to the engine; answer with the claim and it."""
    if op is None:
        return DomainChange(domain=claim, operation=None)
    platform.engine.submit(op.id)
    return DomainChange(domain=claim, operation=operations_service.to_read(op))
