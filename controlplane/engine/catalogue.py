"""Every operation kind as data: its ordered steps, how each is done, undone and retried.

The runner walks a kind from here and knows nothing else about it. Adding a kind is a
`KindSpec` entry plus its step functions (see the README, "Adding an operation kind").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from controlplane.engine import (
    backup_steps,
    bulk_steps,
    bundle_steps,
    env_steps,
    import_steps,
    site_steps,
    staging_steps,
    update_steps,
)
from controlplane.engine.context import Work
from controlplane.engine.provider import BackupInvalid
from controlplane.errors import ApplyFailed
from controlplane.kernel.vocabulary import KIND_LABELS, OperationKind, OperationStatus, StepStatus
from controlplane.models import Operation, OperationStep, Site

StepAction = Callable[[Work], None]


class Permanent(Exception):
    """A provider error that no retry can fix (bad config, a refused request): fail now."""


# Errors of the code or of the input, not of the moment: retrying repeats them.
NOT_WORTH_RETRYING: tuple[type[BaseException], ...] = (
    Permanent,
    ApplyFailed,
    BackupInvalid,
    ValueError,
    TypeError,
    KeyError,
    NotImplementedError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing step is tried in-process before the operation fails or rolls back."""

    attempts: int = 3
    backoff_seconds: float = 0.2  # before the 2nd try; doubled for each later one
    max_backoff_seconds: float = 5.0
    give_up_on: tuple[type[BaseException], ...] = NOT_WORTH_RETRYING

    def delay(self, tried: int) -> float:
        """Seconds to wait after the `tried`-th failed try."""
        # The exponent is capped: a long wait (a bulk's) counts past what a float holds.
        return float(min(self.backoff_seconds * 2 ** min(tried - 1, 30), self.max_backoff_seconds))

    def worth_retrying(self, exc: BaseException) -> bool:
        """Whether this error may go away on its own."""
        return not isinstance(exc, self.give_up_on)


@dataclass(frozen=True)
class StepSpec:
    """One step of a kind. `undo` None: forward only (a failure stops the operation there)."""

    name: str
    do: StepAction
    undo: StepAction | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # No new try starts once the step has run this long (a call in flight is not cut off:
    # provider calls carry their own deadlines).
    timeout_seconds: float = 900.0
    # Hold this process's lock of the operation's site while the step runs.
    needs_site_lock: bool = True
    # A step only some operations of the kind have: those whose params carry this key
    # (a create from a backup has `from_backup`); fixed when the operation is recorded.
    only_if: str | None = None


class OnFailure(StrEnum):
    """What a failed step means for the operation."""

    ROLL_BACK = "roll_back"  # undo every step that ran, in reverse: all or nothing
    STOP = "stop"  # fail where it is; running the operation again finishes it


class Scope(StrEnum):
    """What an operation works on."""

    SITE = "site"
    TENANT = "tenant"


def _nothing(work: Work) -> None:
    """No change to make at this point of the operation."""


@dataclass(frozen=True)
class KindSpec:
    """An operation kind: its steps and what its start and each ending change."""

    kind: OperationKind
    steps: tuple[StepSpec, ...]
    on_failure: OnFailure
    scope: Scope = Scope.SITE
    started: StepAction = _nothing
    succeeded: StepAction = _nothing
    # A failure (or an undo that failed, or giving up): leave the subject usable again.
    failed: StepAction = _nothing
    rolled_back: StepAction = _nothing
    failure_hint: str = ""  # appended to the operation's error: what the user can do

    @property
    def label(self) -> str:
        """The human name of the kind."""
        return KIND_LABELS[self.kind]

    @property
    def step_names(self) -> tuple[str, ...]:
        """The names of the steps every operation of the kind has, in order."""
        return tuple(step.name for step in self.steps if step.only_if is None)

    def steps_for(self, params: dict[str, Any]) -> tuple[str, ...]:
        """The step names of an operation with these params, in order."""
        return tuple(
            step.name for step in self.steps if step.only_if is None or step.only_if in params
        )

    def step(self, name: str) -> StepSpec:
        """The spec of one step (an operation's steps were made from this kind)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"{self.kind} has no step {name!r}")


CREATE_PARTS = ("database", "secrets", "storage", "runtime", "dns", "wordpress")
# Visitors get the maintenance page while a copy replaces the live site (restore, import,
# promotion); undone by turning it off.
MAINTENANCE = StepSpec(
    "maintenance", do=backup_steps.maintenance(True), undo=backup_steps.maintenance(False)
)

CATALOGUE: dict[OperationKind, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec(
            kind=OperationKind.CREATE_SITE,
            steps=(
                *(
                    StepSpec(part, do=site_steps.ensure(part), undo=site_steps.remove(part))
                    for part in CREATE_PARTS
                ),
                # A new site of a tenant with a bundle: its plugins and theme installed and
                # activated. No undo: removing the site (the wordpress step's undo) takes them.
                StepSpec("bundle", do=bundle_steps.install, only_if="bundle"),
                # A site made from a backup (another site's, or a deleted one's: the
                # undelete): the backup staged, its URLs rewritten, swapped in.
                StepSpec(
                    "restore",
                    do=backup_steps.restore_into_new_site,
                    undo=backup_steps.unstage,
                    only_if="from_backup",
                    timeout_seconds=3600.0,
                ),
            ),
            on_failure=OnFailure.ROLL_BACK,
            succeeded=site_steps.created,
            failed=site_steps.broken,
            rolled_back=site_steps.gone,
        ),
        # Roll-forward: a backup first, then every part removed in the reverse of creation.
        KindSpec(
            kind=OperationKind.DELETE_SITE,
            steps=(
                StepSpec("backup", do=backup_steps.pre_delete, timeout_seconds=3600.0),
                *(StepSpec(part, do=site_steps.remove(part)) for part in reversed(CREATE_PARTS)),
            ),
            on_failure=OnFailure.STOP,
            started=site_steps.deleting,
            succeeded=site_steps.gone,
            failed=site_steps.broken,
            failure_hint="; the site is partly deleted: delete it again",
        ),
        KindSpec(
            kind=OperationKind.START_SITE,
            steps=(StepSpec("runtime", do=site_steps.start_serving),),
            on_failure=OnFailure.STOP,
            succeeded=site_steps.serving("ready"),
            failed=site_steps.released,
        ),
        KindSpec(
            kind=OperationKind.STOP_SITE,
            steps=(StepSpec("runtime", do=site_steps.stop_serving),),
            on_failure=OnFailure.STOP,
            succeeded=site_steps.serving("stopped"),
            failed=site_steps.released,
        ),
        # wordpress too: the site's own names are in its config (loopback, outbound allow-list).
        KindSpec(
            kind=OperationKind.UPDATE_DOMAINS,
            steps=tuple(
                StepSpec(part, do=site_steps.ensure(part))
                for part in ("runtime", "dns", "wordpress")
            ),
            on_failure=OnFailure.STOP,
            succeeded=site_steps.released,
            failed=site_steps.released,
            failure_hint="; verify the domain again to retry",
        ),
        KindSpec(
            kind=OperationKind.APPLY_ENV,
            scope=Scope.TENANT,
            steps=(
                # Waits while another change holds one of the tenant's sites: run again after
                # the backoff without holding a worker, for up to the timeout.
                StepSpec(
                    "claim_sites",
                    do=env_steps.claim_sites,
                    retry=RetryPolicy(
                        attempts=3,
                        backoff_seconds=0.1,
                        max_backoff_seconds=1.0,
                        give_up_on=NOT_WORTH_RETRYING,
                    ),
                    timeout_seconds=600.0,
                    needs_site_lock=False,
                ),
                # The claims above keep every other change off these sites.
                StepSpec("runtime", do=env_steps.apply_env, needs_site_lock=False),
            ),
            on_failure=OnFailure.STOP,
            succeeded=env_steps.release_sites,
            failed=env_steps.release_sites,
            failure_hint="; the values are saved: save one again to retry",
        ),
        # The backup row is made with the operation (its id is the provider's idempotency
        # key); retention runs after each backup and forgets only scheduled ones.
        KindSpec(
            kind=OperationKind.BACKUP_SITE,
            steps=(
                StepSpec("backup", do=backup_steps.take("backup"), timeout_seconds=3600.0),
                StepSpec("retention", do=backup_steps.apply_retention),
            ),
            on_failure=OnFailure.STOP,
            succeeded=site_steps.released,
            failed=backup_steps.backup_failed,
            failure_hint="; nothing on the site changed: back it up again to retry",
        ),
        # All or nothing: any failure (a bad backup, a site that does not come up) puts
        # the replaced copy back and turns maintenance off.
        KindSpec(
            kind=OperationKind.RESTORE_SITE,
            steps=(
                StepSpec("pre_restore", do=backup_steps.take("pre_backup"), timeout_seconds=3600.0),
                StepSpec("check", do=backup_steps.check),
                MAINTENANCE,
                StepSpec(
                    "stage",
                    do=backup_steps.stage,
                    undo=backup_steps.unstage,
                    timeout_seconds=3600.0,
                ),
                StepSpec("swap", do=backup_steps.swap, undo=backup_steps.unswap),
                StepSpec("probe", do=backup_steps.probe),
                # Before finish: a failure here still finds the replaced copy to put back.
                StepSpec("fingerprint", do=staging_steps.refingerprint_copies),
                StepSpec("finish", do=backup_steps.finish),
            ),
            on_failure=OnFailure.ROLL_BACK,
            started=backup_steps.restoring,
            succeeded=backup_steps.restored,
            failed=site_steps.broken,
            rolled_back=backup_steps.not_restored,
        ),
        # A restore whose copy was uploaded: the upload checked first (before the backup, so
        # a refused upload costs nothing), then all or nothing as a restore; the upload's
        # directory goes however it ends.
        KindSpec(
            kind=OperationKind.IMPORT_SITE,
            steps=(
                StepSpec("check", do=import_steps.check, timeout_seconds=3600.0),
                StepSpec("pre_import", do=backup_steps.take("pre_backup"), timeout_seconds=3600.0),
                MAINTENANCE,
                StepSpec(
                    "stage",
                    do=import_steps.stage,
                    undo=backup_steps.unstage,
                    timeout_seconds=3600.0,
                ),
                StepSpec("swap", do=import_steps.swap, undo=import_steps.unswap),
                StepSpec("probe", do=backup_steps.probe),
                StepSpec("finish", do=import_steps.finish),
            ),
            on_failure=OnFailure.ROLL_BACK,
            started=backup_steps.restoring,
            succeeded=import_steps.imported,
            failed=import_steps.import_failed,
            rolled_back=import_steps.not_imported,
        ),
        # A trial restore beside the live site (never swapped in): the backup round's
        # sample. Holds the site's claim, so no restore stages beside it at the same time.
        KindSpec(
            kind=OperationKind.VERIFY_BACKUP,
            steps=(
                StepSpec(
                    "stage",
                    do=backup_steps.trial_stage,
                    undo=backup_steps.unstage,
                    timeout_seconds=3600.0,
                ),
                StepSpec("compare", do=backup_steps.compare),
                StepSpec("unstage", do=backup_steps.unstage),
            ),
            on_failure=OnFailure.ROLL_BACK,
            succeeded=site_steps.released,
            failed=backup_steps.verify_failed,
            rolled_back=backup_steps.verify_rolled_back,
        ),
        # A staging copy of a site, made on the new (staging) site: the parent's fingerprint
        # and backup, every part built, the backup restored with its URLs rewritten. All or
        # nothing: an undone clone leaves no site, no backup of the parent, no fingerprint.
        KindSpec(
            kind=OperationKind.CLONE_SITE,
            steps=(
                StepSpec(
                    "parent_backup",
                    do=staging_steps.back_up_parent,
                    undo=staging_steps.forget_parent_backup,
                    timeout_seconds=3600.0,
                ),
                *(
                    StepSpec(part, do=site_steps.ensure(part), undo=site_steps.remove(part))
                    for part in CREATE_PARTS
                ),
                StepSpec(
                    "restore",
                    do=backup_steps.restore_into_new_site,
                    undo=backup_steps.unstage,
                    timeout_seconds=3600.0,
                ),
            ),
            on_failure=OnFailure.ROLL_BACK,
            succeeded=site_steps.created,
            failed=site_steps.broken,
            rolled_back=site_steps.gone,
        ),
        # A staging site's copy put into its production parent, as a restore is (all or
        # nothing), within its scope; production's drift record starts again at the end.
        KindSpec(
            kind=OperationKind.PROMOTE_SITE,
            steps=(
                StepSpec("pre_promote", do=backup_steps.take("pre_backup"), timeout_seconds=3600.0),
                StepSpec("copy", do=staging_steps.back_up_staging, timeout_seconds=3600.0),
                StepSpec("check", do=backup_steps.check),
                MAINTENANCE,
                StepSpec(
                    "stage",
                    do=staging_steps.stage_copy,
                    undo=backup_steps.unstage,
                    timeout_seconds=3600.0,
                ),
                StepSpec("swap", do=staging_steps.swap_copy, undo=staging_steps.unswap_copy),
                StepSpec("probe", do=staging_steps.probe_promoted),
                # Before finish: a failure here still finds the replaced copy to put back.
                StepSpec("fingerprint", do=staging_steps.refingerprint),
                StepSpec("finish", do=backup_steps.finish),
            ),
            on_failure=OnFailure.ROLL_BACK,
            started=staging_steps.promoting,
            succeeded=staging_steps.promoted,
            failed=site_steps.broken,
            rolled_back=staging_steps.not_promoted,
        ),
        # All or nothing behind the maintenance page: a site that fails its health probe
        # after the update gets what it had back (files, and the database if core changed);
        # maintenance ends on every path (an undone maintenance_off turns it on again while
        # the files go back, the maintenance step's undo turns it off).
        KindSpec(
            kind=OperationKind.UPDATE_SITE,
            steps=(
                StepSpec("pre_update", do=backup_steps.take("pre_backup"), timeout_seconds=3600.0),
                StepSpec(
                    "maintenance",
                    do=update_steps.maintenance_on,
                    undo=update_steps.maintenance_off,
                ),
                StepSpec("install", do=update_steps.install, undo=update_steps.uninstall),
                StepSpec(
                    "upgrade_db",
                    do=update_steps.upgrade_database,
                    undo=update_steps.restore_database,
                    timeout_seconds=3600.0,
                ),
                StepSpec(
                    "maintenance_off",
                    do=update_steps.maintenance_off,
                    undo=update_steps.maintenance_on,
                ),
                # One try: the probe retries inside its window and then decides.
                StepSpec("probe", do=update_steps.probe, retry=RetryPolicy(attempts=1)),
                StepSpec("finish", do=update_steps.finish),
            ),
            on_failure=OnFailure.ROLL_BACK,
            succeeded=update_steps.updated,
            failed=update_steps.update_failed,
            rolled_back=update_steps.not_updated,
        ),
        # One child operation per site, a few at a time; the parent waits for them without
        # holding a worker, and a child's failure is counted, never fatal.
        KindSpec(
            kind=OperationKind.BULK,
            scope=Scope.TENANT,
            steps=(
                StepSpec(
                    bulk_steps.STEP,
                    do=bulk_steps.run_children,
                    retry=RetryPolicy(attempts=3, backoff_seconds=0.05, max_backoff_seconds=0.5),
                    timeout_seconds=86400.0,
                    needs_site_lock=False,
                ),
            ),
            on_failure=OnFailure.STOP,
            failure_hint="; the children that started ran to their end",
        ),
    )
}


def kind_spec(kind: str) -> KindSpec:
    """The catalogue entry of a kind; KeyError for a kind nobody declared."""
    return CATALOGUE[OperationKind(kind)]


def new_operation(
    *,
    kind: OperationKind,
    tenant_id: str,
    site: Site | None,
    requested_by: str,
    request_id: str | None,
    params: dict[str, Any] | None = None,
) -> Operation:
    """A pending operation with the kind's steps, ready to be added to a session."""
    spec = CATALOGUE[kind]
    if (site is None) != (spec.scope is Scope.TENANT):
        raise ValueError(f"{kind} works on a {spec.scope}")
    return Operation(
        kind=kind,
        tenant_id=tenant_id,
        site_id=site.id if site is not None else None,
        # A tenant-level operation has no site: its name is empty.
        site_name=site.name if site is not None else "",
        status=OperationStatus.PENDING,
        requested_by=requested_by,
        request_id=request_id,
        params=params or {},
        steps=[
            OperationStep(position=i, name=name, status=StepStatus.PENDING)
            for i, name in enumerate(spec.steps_for(params or {}))
        ],
    )
