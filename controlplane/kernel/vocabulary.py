"""The words operations are described in: kinds, statuses, step statuses and event types.

The string values are what the database stores and the API, the CLI, the tools and the
widget (through `GET /v1/vocabulary`) carry; never retype them elsewhere.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class OperationKind(StrEnum):
    """What an operation does."""

    CREATE_SITE = "create_site"
    DELETE_SITE = "delete_site"
    START_SITE = "start_site"
    STOP_SITE = "stop_site"
    # A verified or removed custom domain: the serving config and the names applied again.
    UPDATE_DOMAINS = "update_domains"
    # A tenant's env vars and secrets applied to every serving site of the tenant.
    APPLY_ENV = "apply_env"
    BACKUP_SITE = "backup_site"
    # A backup put back in place of the live site (a pre-restore backup taken first).
    RESTORE_SITE = "restore_site"
    # A backup restored beside its site (never over it) and checked: the scheduled sample.
    VERIFY_BACKUP = "verify_backup"
    # A new staging site made from a backup of its parent, URLs rewritten.
    CLONE_SITE = "clone_site"
    # A staging site's copy swapped into its production parent (a pre-promote backup first).
    PROMOTE_SITE = "promote_site"
    # A dump and wp-content from elsewhere swapped into a site (a pre-import backup first).
    IMPORT_SITE = "import_site"
    # Catalogue versions of core, plugins or themes put in place (a pre-update backup first,
    # rolled back by itself when the site fails its health probe after).
    UPDATE_SITE = "update_site"
    # One child operation per site of a tenant (backup, stop, start, update), a few at a time.
    BULK = "bulk"


class BulkAction(StrEnum):
    """What a bulk operation does to each of its sites."""

    UPDATE = "update"
    BACKUP = "backup"
    STOP = "stop"
    START = "start"


class SiteRole(StrEnum):
    """What a site is for: serving visitors, or a copy to work on before promoting it."""

    PRODUCTION = "production"
    STAGING = "staging"


class PackageKind(StrEnum):
    """What a catalogue package or an installed thing is."""

    PLUGIN = "plugin"
    THEME = "theme"
    CORE = "core"


class BackupKind(StrEnum):
    """Why a backup was taken."""

    MANUAL = "manual"
    SCHEDULED = "scheduled"
    PRE_DELETE = "pre-delete"
    PRE_RESTORE = "pre-restore"
    PRE_UPDATE = "pre-update"
    PRE_PROMOTE = "pre-promote"
    PRE_IMPORT = "pre-import"
    # The parent's backup a staging clone is made from.
    PRE_CLONE = "pre-clone"


class BackupStatus(StrEnum):
    """Where a backup is in its life."""

    PENDING = "pending"  # recorded; its operation has not written it yet
    SUCCEEDED = "succeeded"  # written and verified: it can be restored
    FAILED = "failed"
    FORGOTTEN = "forgotten"  # removed from storage (retention or pruning); the row stays


class OperationStatus(StrEnum):
    """Where an operation is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    # Never started, or stopped before its end: a bulk's children not started when it was
    # cancelled, and the bulk itself.
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (OperationStatus.PENDING, OperationStatus.RUNNING, OperationStatus.ROLLING_BACK)
FINISHED_STATUSES = (
    OperationStatus.SUCCEEDED,
    OperationStatus.FAILED,
    OperationStatus.ROLLED_BACK,
    OperationStatus.CANCELLED,
)


class StepStatus(StrEnum):
    """Where one step of an operation is."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNDOING = "undoing"
    UNDONE = "undone"


class EventType(StrEnum):
    """The progress events an operation streams, in the order they can happen."""

    OPERATION_STARTED = "operation_started"
    OPERATION_RESUMED = "operation_resumed"
    STEP_STARTED = "step_started"
    STEP_RETRYING = "step_retrying"
    STEP_FINISHED = "step_finished"
    STEP_FAILED = "step_failed"
    ROLLBACK_STARTED = "rollback_started"
    STEP_UNDONE = "step_undone"
    # A bulk's: one of its children ended ("3 of 10 done, 1 failed"); a cancel was asked for.
    CHILD_FINISHED = "child_finished"
    CANCEL_REQUESTED = "cancel_requested"
    OPERATION_SUCCEEDED = "operation_succeeded"
    OPERATION_FAILED = "operation_failed"
    OPERATION_ROLLED_BACK = "operation_rolled_back"
    OPERATION_CANCELLED = "operation_cancelled"


# What a step in a progress list becomes on each step event.
STEP_EVENT_STATES: dict[EventType, StepStatus] = {
    EventType.STEP_STARTED: StepStatus.RUNNING,
    EventType.STEP_RETRYING: StepStatus.RUNNING,
    EventType.STEP_FINISHED: StepStatus.DONE,
    EventType.STEP_FAILED: StepStatus.FAILED,
    EventType.STEP_UNDONE: StepStatus.UNDONE,
}
# The events a live region says aloud: an operation's start and end, and a failed step.
ANNOUNCED_EVENTS = (
    EventType.OPERATION_STARTED,
    EventType.OPERATION_SUCCEEDED,
    EventType.OPERATION_FAILED,
    EventType.OPERATION_ROLLED_BACK,
    EventType.OPERATION_CANCELLED,
    EventType.STEP_FAILED,
)

KIND_LABELS: dict[OperationKind, str] = {
    OperationKind.CREATE_SITE: "Create site",
    OperationKind.DELETE_SITE: "Delete site",
    OperationKind.START_SITE: "Start site",
    OperationKind.STOP_SITE: "Stop site",
    OperationKind.UPDATE_DOMAINS: "Update domains",
    OperationKind.APPLY_ENV: "Apply env vars",
    OperationKind.BACKUP_SITE: "Back up site",
    OperationKind.RESTORE_SITE: "Restore site",
    OperationKind.VERIFY_BACKUP: "Verify backup",
    OperationKind.CLONE_SITE: "Clone site",
    OperationKind.PROMOTE_SITE: "Promote staging",
    OperationKind.IMPORT_SITE: "Import site",
    OperationKind.UPDATE_SITE: "Update site",
    OperationKind.BULK: "Bulk operation",
}


def as_json() -> dict[str, Any]:
    """The whole vocabulary as JSON values (`GET /v1/vocabulary` of both services)."""
    return {
        "operation_kinds": [k.value for k in OperationKind],
        "operation_kind_labels": {k.value: v for k, v in KIND_LABELS.items()},
        "operation_statuses": [s.value for s in OperationStatus],
        "active_operation_statuses": [s.value for s in ACTIVE_STATUSES],
        "finished_operation_statuses": [s.value for s in FINISHED_STATUSES],
        "step_statuses": [s.value for s in StepStatus],
        "event_types": [e.value for e in EventType],
        "step_event_states": {e.value: s.value for e, s in STEP_EVENT_STATES.items()},
        "announced_events": [e.value for e in ANNOUNCED_EVENTS],
        "backup_kinds": [k.value for k in BackupKind],
        "backup_statuses": [s.value for s in BackupStatus],
        "site_roles": [r.value for r in SiteRole],
        "package_kinds": [k.value for k in PackageKind],
        "bulk_actions": [a.value for a in BulkAction],
    }
