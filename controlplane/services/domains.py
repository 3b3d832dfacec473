"""Custom domains: claim, prove (a DNS TXT record), serve, remove.

A claim proves nothing, so it blocks nobody and reveals nothing: any number of sites may hold
pending claims to one name, and only a verified domain is unique and served. Answers never
say whether another tenant claimed a name; only a caller who has just proven control of a
name learns that another site already holds it verified.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.dnscheck import DomainCheck, challenge_name, new_token
from controlplane.engine.catalogue import new_operation
from controlplane.errors import BadRequest, Conflict, Invalid
from controlplane.kernel import names
from controlplane.kernel.identity import Principal
from controlplane.kernel.logs import current_request_id
from controlplane.kernel.vocabulary import OperationKind
from controlplane.models import (
    DOMAIN_PENDING,
    DOMAIN_VERIFIED,
    Domain,
    Operation,
    Site,
    utcnow,
)
from controlplane.permissions import Action, NotVisible
from controlplane.schemas import DnsRecord, DomainRead
from controlplane.services.site_checks import require_ready
from controlplane.services.sites import get_site

MAX_CLAIMS_PER_SITE = 20


def to_read(claim: Domain) -> DomainRead:
    """The API view of a claim, with the record that proves it."""
    record = DnsRecord(type="TXT", name=challenge_name(claim.domain), value=claim.token)
    if claim.status == DOMAIN_VERIFIED:
        instructions = (
            f"{claim.domain} is verified and served by the site; keep the TXT record, and "
            "point the name at the site (CNAME or A record) if you have not yet"
        )
    else:
        instructions = (
            f'create a TXT record {record.name} with the value "{record.value}", then call '
            "verify; the site does not answer to the name until then"
        )
    return DomainRead(
        domain=claim.domain, status=claim.status, verification=record,
        instructions=instructions, created_at=claim.created_at, checked_at=claim.checked_at,
        verified_at=claim.verified_at, last_error=claim.last_error,
    )  # fmt: skip


def new_claim(domain: str) -> Domain:
    """A pending claim with a fresh token (unsaved)."""
    return Domain(domain=domain, status=DOMAIN_PENDING, token=new_token())


def _claim_of(site: Site, domain: str) -> Domain:
    for claim in site.domains:
        if claim.domain == domain:
            return claim
    raise NotVisible(f"site {site.name!r} has no claim to {domain!r}; add the domain first")


def _normalised(domain: str, platform_domain: str | None) -> str:
    try:
        return names.check_domain(domain, platform_domain)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


def list_domains(
    session: Session, *, principal: Principal, tenant_id: str, site: str
) -> list[DomainRead]:
    """A site's domain claims, pending and verified."""
    record = get_site(session, principal=principal, tenant_id=tenant_id, name=site)
    return [to_read(c) for c in sorted(record.domains, key=lambda c: c.domain)]


def claim_domain(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    domain: str,
    platform_domain: str | None = None,
) -> tuple[DomainRead, bool]:
    """Start a claim (or return the site's existing one); True when it is new."""
    record = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.CHANGE_SITES
    )
    domain = _normalised(domain, platform_domain)
    for claim in record.domains:
        if claim.domain == domain:
            return to_read(claim), False
    if len(record.domains) >= MAX_CLAIMS_PER_SITE:
        raise Conflict(f"site {site!r} already has {MAX_CLAIMS_PER_SITE} domains; remove one first")
    claim = new_claim(domain)
    record.domains.append(claim)
    audit.record(session, principal=principal, action="domain.claim", tenant_id=tenant_id,
                 target=site, detail={"domain": domain})  # fmt: skip
    session.commit()
    return to_read(claim), True


def _claim_site(session: Session, *, principal: Principal, site: Site) -> Operation:
    """Record an update_domains operation and take the site's one-change-at-a-time claim."""
    op = new_operation(
        kind=OperationKind.UPDATE_DOMAINS, tenant_id=site.tenant_id, site=site,
        requested_by=principal.sub, request_id=current_request_id(),
    )  # fmt: skip
    session.add(op)
    session.flush()
    claimed = session.execute(  # type: ignore[attr-defined]
        update(Site)
        .where(Site.id == site.id, Site.current_operation_id.is_(None))
        .values(current_operation_id=op.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        session.rollback()
        raise Conflict(f"site {site.name!r} is busy with another change; retry when it is done")
    return op


def verify_domain(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    domain: str,
    check: DomainCheck,
) -> tuple[DomainRead, Operation]:
    """Check the claim's TXT record; once proven, serve the domain (an operation applies the
    site's runtime and names again). A verified domain is simply applied again."""
    record = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.CHANGE_SITES
    )
    claim = _claim_of(record, domain.strip().lower().rstrip("."))
    require_ready(record, "serving a domain")
    if claim.status != DOMAIN_VERIFIED:
        error = check(claim.domain, claim.token)
        claim.checked_at = utcnow()
        if error is None:
            holder = session.scalar(
                select(Domain.id).where(
                    Domain.verified_domain == claim.domain, Domain.id != claim.id
                )
            )
            if holder is not None:
                error = (
                    "the name is verified for another site; whoever holds it there must "
                    "remove it first (or ask the platform's admins)"
                )
        if error is not None:
            claim.last_error = error
            audit.record(session, principal=principal, action="domain.verify", outcome="failed",
                         tenant_id=tenant_id, target=site,
                         detail={"domain": claim.domain, "error": error})  # fmt: skip
            session.commit()
            raise BadRequest(f"{claim.domain} is not verified: {error}")
        claim.status = DOMAIN_VERIFIED
        claim.verified_domain = claim.domain
        claim.verified_at = claim.checked_at
        claim.last_error = None
    op = _claim_site(session, principal=principal, site=record)
    audit.record(session, principal=principal, action="domain.verify", tenant_id=tenant_id,
                 target=site, detail={"domain": claim.domain, "operation_id": op.id})  # fmt: skip
    session.commit()
    return to_read(claim), op


def remove_domain(
    session: Session, *, principal: Principal, tenant_id: str, site: str, domain: str
) -> tuple[DomainRead, Operation | None]:
    """Drop a claim; a verified domain also stops being served (an operation applies it)."""
    record = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.CHANGE_SITES
    )
    claim = _claim_of(record, domain.strip().lower().rstrip("."))
    before = to_read(claim)
    op = None
    if claim.status == DOMAIN_VERIFIED:
        require_ready(record, "removing a served domain")
        op = _claim_site(session, principal=principal, site=record)
    record.domains.remove(claim)
    detail = {"domain": claim.domain, "was": claim.status}
    if op is not None:
        detail["operation_id"] = op.id
    audit.record(session, principal=principal, action="domain.remove", tenant_id=tenant_id,
                 target=site, detail=detail)  # fmt: skip
    session.commit()
    return before, op
