"""The catalogue's entries: add a checked zip, list them, find a version ("latest" is the
newest), and hand a provider what it installs."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.engine.packages import PackageArchive
from controlplane.errors import BadRequest, Conflict
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import PackageKind
from controlplane.models import CataloguePackage
from controlplane.packages.archives import inspect_archive, sha256_of
from controlplane.packages.store import CatalogueStore
from controlplane.packages.versions import ascending, version_key
from controlplane.permissions import Action, authorize
from controlplane.schemas import CatalogueEntryRead

LATEST = "latest"


def to_read(entry: CataloguePackage) -> CatalogueEntryRead:
    """The API view of an entry (never its location)."""
    return CatalogueEntryRead(
        kind=PackageKind(entry.kind), slug=entry.slug, version=entry.version, name=entry.name,
        sha256=entry.sha256, size_bytes=entry.size_bytes, added_at=entry.added_at,
    )  # fmt: skip


def add_package(
    session: Session,
    *,
    principal: Principal,
    store: CatalogueStore,
    kind: PackageKind,
    zip_path: Path,
    max_bytes: int,
) -> CataloguePackage:
    """Check a zip and keep it as a new entry (admins); ArchiveRefused for a zip the platform
    would not install, 409 when that version is already there. Nothing is kept on refusal."""
    authorize(principal, Action.MANAGE_TENANTS)
    info = inspect_archive(zip_path, kind, max_bytes=max_bytes)
    if find(session, kind, info.slug, info.version) is not None:
        raise Conflict(f"{kind} {info.slug} {info.version} is already in the catalogue")
    location = store.put(f"{kind}/{info.slug}/{info.version}", zip_path)
    entry = CataloguePackage(
        kind=kind, slug=info.slug, version=info.version, name=info.name,
        sha256=sha256_of(zip_path), size_bytes=zip_path.stat().st_size, location=location,
        added_by=principal.sub,
    )  # fmt: skip
    session.add(entry)
    audit.record(session, principal=principal, action="catalogue.add", tenant_id=None,
                 target=f"{kind}/{info.slug}/{info.version}",
                 detail={"sha256": entry.sha256, "size_bytes": entry.size_bytes})  # fmt: skip
    try:
        session.commit()
    except IntegrityError:  # added by another request in between: its zip is the same name
        session.rollback()
        raise Conflict(f"{kind} {info.slug} {info.version} is already in the catalogue") from None
    except Exception:
        session.rollback()
        store.remove(location)
        raise
    session.refresh(entry)
    return entry


def list_entries(session: Session, *, principal: Principal) -> list[CataloguePackage]:
    """Every entry, by kind and slug, versions ascending (any signed-in role)."""
    authorize(principal, Action.READ_SITES)
    rows = session.scalars(select(CataloguePackage))
    return sorted(rows, key=lambda r: (r.kind, r.slug, version_key(r.version)))


def find(session: Session, kind: PackageKind, slug: str, version: str) -> CataloguePackage | None:
    """One entry, or None."""
    return session.scalar(
        select(CataloguePackage).where(
            CataloguePackage.kind == kind,
            CataloguePackage.slug == slug,
            CataloguePackage.version == version,
        )
    )


def versions(session: Session) -> dict[tuple[str, str], list[str]]:
    """(kind, slug) -> the catalogue's versions, ascending."""
    found: dict[tuple[str, str], list[str]] = {}
    for kind, slug, version in session.execute(
        select(CataloguePackage.kind, CataloguePackage.slug, CataloguePackage.version)
    ):
        found.setdefault((kind, slug), []).append(version)
    return {key: ascending(values) for key, values in found.items()}


def resolve(session: Session, kind: PackageKind, slug: str, version: str) -> CataloguePackage:
    """The entry a request names ("latest": the newest); 400 when the catalogue lacks it."""
    if version == LATEST:
        held = versions(session).get((kind, slug))
        if not held:
            raise BadRequest(f"the catalogue has no {kind} {slug!r}: add it first")
        version = held[-1]
    entry = find(session, kind, slug, version)
    if entry is None:
        held = versions(session).get((kind, slug), [])
        raise BadRequest(
            f"the catalogue has no {kind} {slug!r} version {version}"
            + (f" (it has {', '.join(held)})" if held else ": add it first")
        )
    return entry


def archive_of(entry: CataloguePackage) -> PackageArchive:
    """What a provider installs for this entry."""
    return PackageArchive(
        kind=PackageKind(entry.kind), slug=entry.slug, version=entry.version,
        sha256=entry.sha256, size_bytes=entry.size_bytes, location=entry.location,
    )  # fmt: skip
