"""The one permission module: every request is decided here from the verified claims."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from controlplane.kernel.identity import Principal, Role
from controlplane.kernel.vocabulary import BulkAction


class Action(StrEnum):
    """Everything a caller may ask of the control plane."""

    MANAGE_TENANTS = "manage_tenants"
    MANAGE_USERS = "manage_users"
    LIST_TENANTS = "list_tenants"
    READ_TENANT = "read_tenant"
    CHANGE_SITES = "change_sites"
    READ_SITES = "read_sites"
    READ_COSTS = "read_costs"
    READ_COST_SUMMARY = "read_cost_summary"
    WRITE_ENV = "write_env"
    READ_ENV = "read_env"
    REVEAL_PASSWORD = "reveal_password"  # noqa: S105 (an action name, not a secret)
    ADMIN_LOGIN = "admin_login"
    READ_AUDIT = "read_audit"
    BACKUP_SITES = "backup_sites"  # take backups, change the backup policy
    RESTORE_SITES = "restore_sites"  # restore in place, create a site from a backup
    DOWNLOAD_BACKUPS = "download_backups"  # the owner's copy of a backup
    READ_DIAGNOSIS = "read_diagnosis"  # a site's evidence and verdict, as logs and metrics


class Scope(StrEnum):
    """Which tenants an allowed role may act on."""

    ALL = "all"
    ASSIGNED = "assigned"
    OWN = "own"
    NONE = "none"


_A, _S = Action, Scope
MATRIX: dict[Action, dict[Role, Scope]] = {
    _A.MANAGE_TENANTS: {Role.ADMIN: _S.ALL},
    _A.MANAGE_USERS: {Role.ADMIN: _S.ALL},
    _A.READ_COST_SUMMARY: {Role.ADMIN: _S.ALL},
    _A.LIST_TENANTS: {
        Role.ADMIN: _S.ALL,
        Role.OPERATOR: _S.ASSIGNED,
        Role.VIEWER: _S.ASSIGNED,
        Role.TENANT: _S.OWN,
    },
    _A.READ_TENANT: {
        Role.ADMIN: _S.ALL,
        Role.OPERATOR: _S.ASSIGNED,
        Role.VIEWER: _S.ASSIGNED,
        Role.TENANT: _S.OWN,
    },
    _A.CHANGE_SITES: {Role.ADMIN: _S.ALL, Role.OPERATOR: _S.ASSIGNED, Role.TENANT: _S.OWN},
    _A.READ_SITES: {
        Role.ADMIN: _S.ALL,
        Role.OPERATOR: _S.ASSIGNED,
        Role.VIEWER: _S.ASSIGNED,
        Role.TENANT: _S.OWN,
    },
    _A.READ_COSTS: {
        Role.ADMIN: _S.ALL,
        Role.OPERATOR: _S.ASSIGNED,
        Role.VIEWER: _S.ASSIGNED,
        Role.TENANT: _S.OWN,
    },
    _A.WRITE_ENV: {Role.ADMIN: _S.ALL, Role.OPERATOR: _S.ASSIGNED, Role.TENANT: _S.OWN},
    _A.READ_ENV: {
        Role.ADMIN: _S.ALL,
        Role.OPERATOR: _S.ASSIGNED,
        Role.VIEWER: _S.ASSIGNED,
        Role.TENANT: _S.OWN,
    },
    _A.REVEAL_PASSWORD: {Role.ADMIN: _S.ALL, Role.OPERATOR: _S.ASSIGNED, Role.TENANT: _S.OWN},
    _A.ADMIN_LOGIN: {Role.ADMIN: _S.ALL, Role.OPERATOR: _S.ASSIGNED, Role.TENANT: _S.OWN},
    _A.READ_AUDIT: {
        Role.ADMIN: _S.ALL,
        Role.OPERATOR: _S.ASSIGNED,
        Role.VIEWER: _S.ASSIGNED,
        Role.TENANT: _S.OWN,
    },
    _A.BACKUP_SITES: {Role.ADMIN: _S.ALL, Role.OPERATOR: _S.ASSIGNED, Role.TENANT: _S.OWN},
    _A.RESTORE_SITES: {Role.ADMIN: _S.ALL, Role.OPERATOR: _S.ASSIGNED, Role.TENANT: _S.OWN},
    # A backup holds every secret of the site (its database): the owner's, and admins'.
    _A.DOWNLOAD_BACKUPS: {Role.ADMIN: _S.ALL, Role.TENANT: _S.OWN},
    _A.READ_DIAGNOSIS: {
        Role.ADMIN: _S.ALL,
        Role.OPERATOR: _S.ASSIGNED,
        Role.VIEWER: _S.ASSIGNED,
        Role.TENANT: _S.OWN,
    },
}


class SiteAction(StrEnum):
    """What a caller may do to one site, as the API lists it in `allowed_actions`."""

    STOP = "stop"
    START = "start"
    DELETE = "delete"
    ADMIN_LOGIN = "admin_login"
    REVEAL_PASSWORD = "reveal_password"  # noqa: S105 (an action name, not a secret)
    CHANGE_ENV = "change_env"
    BACKUP = "backup"
    RESTORE = "restore"
    DOWNLOAD_BACKUP = "download_backup"
    CLONE = "clone"  # a staging copy of the site
    DRIFT = "drift"  # what changed on production since the staging copy was made
    PROMOTE = "promote"  # the staging copy into production
    ROLLBACK = "rollback"  # production back to before its last promotion
    IMPORT = "import"
    UPDATE = "update"  # catalogue versions of core, plugins or themes


@dataclass(frozen=True)
class SiteActionRule:
    """A site action's permission, the site states it is valid in (None: any), whether it
    claims the site (so it waits while another operation holds it), the site roles
    (SiteRole values) it applies to (None: any), and whether it needs a pre-promote state
    to go back to."""

    action: Action
    statuses: frozenset[str] | None
    claims_site: bool
    roles: frozenset[str] | None = None
    needs_promotion: bool = False


_READY, _STOPPED = "ready", "stopped"
_PRODUCTION, _STAGING = "production", "staging"  # SiteRole values
SITE_ACTION_RULES: dict[SiteAction, SiteActionRule] = {
    SiteAction.STOP: SiteActionRule(_A.CHANGE_SITES, frozenset({_READY}), claims_site=True),
    SiteAction.START: SiteActionRule(_A.CHANGE_SITES, frozenset({_STOPPED}), claims_site=True),
    SiteAction.DELETE: SiteActionRule(_A.CHANGE_SITES, None, claims_site=True),
    SiteAction.ADMIN_LOGIN: SiteActionRule(_A.ADMIN_LOGIN, frozenset({_READY}), claims_site=False),
    SiteAction.REVEAL_PASSWORD: SiteActionRule(
        _A.REVEAL_PASSWORD, frozenset({_READY, _STOPPED}), claims_site=False
    ),
    # Env changes reach the sites that run (ready) or will run again (stopped).
    SiteAction.CHANGE_ENV: SiteActionRule(
        _A.WRITE_ENV, frozenset({_READY, _STOPPED}), claims_site=False
    ),
    SiteAction.BACKUP: SiteActionRule(
        _A.BACKUP_SITES, frozenset({_READY, _STOPPED}), claims_site=True
    ),
    SiteAction.RESTORE: SiteActionRule(_A.RESTORE_SITES, frozenset({_READY}), claims_site=True),
    SiteAction.DOWNLOAD_BACKUP: SiteActionRule(
        _A.DOWNLOAD_BACKUPS, frozenset({_READY, _STOPPED}), claims_site=False
    ),
    # A clone is a new site: the parent is read (backed up), never claimed.
    SiteAction.CLONE: SiteActionRule(
        _A.CHANGE_SITES, frozenset({_READY}), claims_site=False, roles=frozenset({_PRODUCTION})
    ),
    SiteAction.DRIFT: SiteActionRule(
        _A.READ_SITES,
        frozenset({_READY, _STOPPED}),
        claims_site=False,
        roles=frozenset({_STAGING}),
    ),
    # Promote is asked of the staging site and runs on (claims) its production parent.
    SiteAction.PROMOTE: SiteActionRule(
        _A.RESTORE_SITES, frozenset({_READY}), claims_site=False, roles=frozenset({_STAGING})
    ),
    SiteAction.ROLLBACK: SiteActionRule(
        _A.RESTORE_SITES,
        frozenset({_READY}),
        claims_site=True,
        roles=frozenset({_PRODUCTION}),
        needs_promotion=True,
    ),
    # An import replaces the site's content, as a restore does.
    SiteAction.IMPORT: SiteActionRule(_A.RESTORE_SITES, frozenset({_READY}), claims_site=True),
    SiteAction.UPDATE: SiteActionRule(_A.CHANGE_SITES, frozenset({_READY}), claims_site=True),
}


class TenantAction(StrEnum):
    """What a caller may do within a tenant, as the API lists it in the tenant's
    `allowed_actions`."""

    CREATE_SITE = "create_site"
    CHANGE_ENV = "change_env"
    # A new site made from a backup (of a deleted site: the undelete).
    RESTORE_SITE = "restore_site"
    # One action (backup, stop, start, update) on many of the tenant's sites at once.
    BULK = "bulk"


TENANT_ACTION_RULES: dict[TenantAction, Action] = {
    TenantAction.CREATE_SITE: _A.CHANGE_SITES,
    TenantAction.CHANGE_ENV: _A.WRITE_ENV,
    TenantAction.RESTORE_SITE: _A.RESTORE_SITES,
    TenantAction.BULK: _A.CHANGE_SITES,
}

# A bulk action (BulkAction values) and the site action each of its children is: its
# permission (asked of the bulk, and of its cancel) and the sites "all" means.
BULK_ACTIONS: dict[BulkAction, SiteAction] = {
    BulkAction.BACKUP: SiteAction.BACKUP,
    BulkAction.STOP: SiteAction.STOP,
    BulkAction.START: SiteAction.START,
    BulkAction.UPDATE: SiteAction.UPDATE,
}


def bulk_permission(action: BulkAction) -> Action:
    """The permission a bulk of `action` (and cancelling it) needs on its tenant."""
    return SITE_ACTION_RULES[BULK_ACTIONS[action]].action


class NotVisible(Exception):
    """The tenant (or its resource) is not visible to the caller: answered as 404."""


class Forbidden(Exception):
    """Visible, but the caller's role may not do this: answered as 403."""


def scope_for(principal: Principal, action: Action) -> Scope:
    """The scope the principal's role has for an action."""
    return MATRIX[action].get(principal.role, Scope.NONE)


def is_allowed(principal: Principal, action: Action, tenant_id: str | None = None) -> bool:
    """Whether the principal may perform `action` (on `tenant_id`, if it is tenant-scoped)."""
    scope = scope_for(principal, action)
    if scope is Scope.NONE:
        return False
    if scope is Scope.ALL:
        return True
    if tenant_id is None:
        return True  # listing: results are filtered to visible tenants
    return tenant_id in principal.tenants


def site_actions(
    principal: Principal,
    tenant_id: str,
    status: str,
    *,
    busy: bool,
    role: str = _PRODUCTION,
    promoted: bool = False,
) -> list[SiteAction]:
    """What the principal may do now to a site of `tenant_id` that is in `status` (`busy`:
    another operation holds it), has `role` and (`promoted`) a pre-promote backup to roll
    back to, in SiteAction order."""
    return [
        name
        for name, rule in _permitted_site_rules(principal.role, tenant_id in principal.tenants)
        if (rule.statuses is None or status in rule.statuses)
        and (rule.roles is None or role in rule.roles)
        and not (busy and rule.claims_site)
        and (promoted or not rule.needs_promotion)
    ]


@cache
def _permitted_site_rules(
    role: Role, own_tenant: bool
) -> tuple[tuple[SiteAction, SiteActionRule], ...]:
    # The rules a role may use on a tenant's sites depend only on the role and whether the
    # tenant is the caller's: worked out once, not once per site of every listing.
    caller = Principal(sub="", role=role, tenants=frozenset({"t"} if own_tenant else ()))
    return tuple(
        (name, rule)
        for name, rule in SITE_ACTION_RULES.items()
        if is_allowed(caller, rule.action, "t")
    )


def tenant_actions(principal: Principal, tenant_id: str) -> list[TenantAction]:
    """What the principal may do within `tenant_id`, in TenantAction order."""
    return [
        name
        for name, action in TENANT_ACTION_RULES.items()
        if is_allowed(principal, action, tenant_id)
    ]


def authorize(principal: Principal, action: Action, tenant_id: str | None = None) -> None:
    """Raise NotVisible (404) or Forbidden (403) unless the action is allowed."""
    if is_allowed(principal, action, tenant_id):
        return
    if tenant_id is not None and not principal.sees_tenant(tenant_id):
        raise NotVisible(f"tenant {tenant_id!r} not found")
    raise Forbidden(f"role {principal.role.value!r} may not {action.value.replace('_', ' ')}")
