"""The steps and outcomes of the site kinds: create, delete, start, stop, update domains."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import update

from controlplane.engine.context import Work
from controlplane.engine.provider import Provider, SiteStep
from controlplane.models import Backup, utcnow

# Step name -> the provider part it drives (named, not looked up with getattr).
PARTS: dict[str, Callable[[Provider], SiteStep]] = {
    "database": lambda p: p.database,
    "secrets": lambda p: p.secrets,
    "storage": lambda p: p.storage,
    "runtime": lambda p: p.runtime,
    "dns": lambda p: p.dns,
    "wordpress": lambda p: p.wordpress,
}


def ensure(part: str) -> Callable[[Work], None]:
    """A step that creates (or confirms) one part of the site."""
    pick = PARTS[part]

    def do(work: Work) -> None:
        pick(work.provider).ensure(work.site_context())

    return do


def remove(part: str) -> Callable[[Work], None]:
    """A step that removes one part of the site (a no-op when it is gone)."""
    pick = PARTS[part]

    def do(work: Work) -> None:
        pick(work.provider).remove(work.site_context())

    return do


def start_serving(work: Work) -> None:
    """Serve the site again."""
    work.provider.runtime.start(work.site_context())


def stop_serving(work: Work) -> None:
    """Take the site offline, deleting nothing."""
    work.provider.runtime.stop(work.site_context())


def deleting(work: Work) -> None:
    """A delete has begun: the site shows as deleting."""
    work.the_site().status = "deleting"


def created(work: Work) -> None:
    """A create finished: the site is ready and has its preview address."""
    site = work.the_site()
    site.status = "ready"
    site.preview_url = work.provider.dns.preview_url(work.site_context())
    site.current_operation_id = None


def gone(work: Work) -> None:
    """Every part is removed: the site row goes (the operation keeps its history, its backups
    stay, counted as a deleted site's from now)."""
    site = work.the_site()
    work.session.execute(
        update(Backup)
        .where(Backup.site_id == site.id, Backup.site_deleted_at.is_(None))
        .values(site_deleted_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    work.operation.site_id = None
    work.session.delete(site)


def broken(work: Work) -> None:
    """Stopped part-way through making or removing parts: the site is in error, free again."""
    site = work.the_site()
    site.status = "error"
    site.current_operation_id = None


def serving(status: str) -> Callable[[Work], None]:
    """A start or stop finished: the site has its new status and is free again."""

    def done(work: Work) -> None:
        site = work.the_site()
        site.status = status
        site.current_operation_id = None

    return done


def released(work: Work) -> None:
    """The change ended with the site as it was: only its claim is dropped."""
    work.the_site().current_operation_id = None
