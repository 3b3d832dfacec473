"""Checks a service makes on a site before it records a change to it."""

from __future__ import annotations

from controlplane.errors import Conflict
from controlplane.models import Site


def require_ready(site: Site, what: str) -> None:
    """409 unless the site is ready and no change holds it; `what` (an import) needs that."""
    if site.status != "ready":
        raise Conflict(f"site {site.name!r} is {site.status}; {what} needs it to be ready")
    if site.current_operation_id is not None:
        raise Conflict(
            f"site {site.name!r} is busy with operation {site.current_operation_id}; "
            "wait for it to finish"
        )
