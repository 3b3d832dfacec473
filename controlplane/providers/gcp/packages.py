"""packages step on gcp: a site's plugins, themes and core.

Plugins and themes are prefixes of the site's own bucket mounted over wp-content/plugins and
wp-content/themes (runtime.CODE_VOLUMES): an update is the packages job writing there, run as
the tenant's identity in the site's image, followed by a new revision (opcache keeps what an
instance loaded). Core is the image's: a core update is a revision on the tenant image's tag
that carries that core version, and putting it back is the previous tag again.

The job (`php PACKAGES_SCRIPT`, runtime/wordpress/aipress-packages.php in the image) is the
service's container with the code volumes writable and the catalogue bucket's `catalogue/`
prefix mounted read-only; each run's input is the JSON in INPUT_ENV, set by the run's
overrides (no secret in it: the database password stays the service's secret reference).
Its report comes back as an object of the site's bucket (REPORTS/<run>.json), read and
deleted here; the job itself is deleted after each run.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from datetime import datetime
from typing import Any

import httpx
from google.api_core import exceptions
from google.cloud import run_v2

from controlplane.engine.packages import CORE_SLUG, HealthResult, InstalledPackage, PackageArchive
from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed
from controlplane.kernel import clock
from controlplane.kernel.vocabulary import PackageKind
from controlplane.observability import LogQuery, SiteLogs
from controlplane.packages.reported import installed_from_report
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.catalogue import CATALOGUE_MOUNT, PREFIX, catalogue_file
from controlplane.providers.gcp.jobs import run_to_end, tenant_job
from controlplane.providers.gcp.runtime import WWW_DATA, CloudRunService, probe_headers
from controlplane.providers.readiness import get_page, homepage_problem

PACKAGES_SCRIPT = "/usr/local/share/aipress/packages.php"  # its path in the tenant image
INPUT_ENV = "AIPRESS_PACKAGES"
REPORTS = ".aipress-packages"  # the reports' prefix in the site's bucket (storage.RESERVED)
JOB_TIMEOUT = 900
READER = "roles/storage.objectViewer"
KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
SHA256 = re.compile(r"[0-9a-f]{64}")
FATAL = "PHP Fatal error"
REPORT_MAX_BYTES = 1024 * 1024  # a listing of 2,000 packages is far less


def job_id(service_id: str) -> str:
    """The job's id beside the service's ("s-..." becomes "p-...")."""
    return f"p-{service_id.removeprefix('s-')}"


def core_image(image: str, version: str) -> str:
    """The tenant image's tag carrying core `version` (repository:version)."""
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repository}:{version}"


class GcpPackages(GcpStep):
    """Reads and changes a site's code through the packages job; probes it over HTTP and
    Cloud Logging."""

    def __init__(self, settings: Any, clients: Any, runtime: CloudRunService,
                 logs: SiteLogs, http: httpx.Client | None = None) -> None:  # fmt: skip
        super().__init__(settings, clients)
        self.runtime = runtime
        self.logs = logs
        self.http = http or httpx.Client(timeout=10, follow_redirects=False)

    def name(self, ctx: SiteContext) -> str:
        """projects/P/locations/L/jobs/p-..."""
        parent = f"projects/{self.project}/locations/{self.settings.gcp_location}"
        return f"{parent}/jobs/{job_id(self.names(ctx).service)}"

    def _bucket(self, ctx: SiteContext) -> str:
        return str((ctx.resources.get("storage") or {}).get("bucket", self.names(ctx).bucket))

    def job(self, ctx: SiteContext) -> run_v2.Job:
        """The service's container running the packages script, code volumes writable, the
        catalogue read-only (when the platform has one); one task, not retried (the engine
        retries the step)."""
        container = self.runtime.container(ctx)
        container.command = ["php", PACKAGES_SCRIPT]
        volumes = self.runtime.volumes(ctx, code_writable=True)
        if self.settings.catalogue_bucket:
            volumes.append(run_v2.Volume(name="catalogue", gcs=run_v2.GCSVolumeSource(
                bucket=self.settings.catalogue_bucket, read_only=True,
                mount_options=[*WWW_DATA, f"only-dir={PREFIX}"])))  # fmt: skip
            container.volume_mounts.append(
                run_v2.VolumeMount(name="catalogue", mount_path=CATALOGUE_MOUNT)
            )
        account = self.runtime_account(ctx)
        return tenant_job(ctx, container, volumes, self.runtime.vpc_access(),
                          account=account, retries=0, timeout=JOB_TIMEOUT)  # fmt: skip

    def _grant_catalogue(self, ctx: SiteContext) -> None:
        """The tenant's identity may read the catalogue (its own policy: no project role)."""
        if not self.settings.catalogue_bucket:
            return
        bucket = self.clients.storage.bucket(self.settings.catalogue_bucket)
        member = f"serviceAccount:{self.runtime_account(ctx)}"

        def grant() -> None:
            policy = bucket.get_iam_policy(requested_policy_version=3)
            if not any(b["role"] == READER and member in b["members"] for b in policy.bindings):
                policy.bindings.append({"role": READER, "members": {member}})
                bucket.set_iam_policy(policy)

        self.propagation.call(grant)

    def _run(self, ctx: SiteContext, action: str, **fields: Any) -> dict[str, Any]:
        """One run of the job; its report. ApplyFailed saying what the script said."""
        run = secrets.token_hex(8)
        payload = json.dumps({"run": run, "action": action, **fields})
        overrides = run_v2.RunJobRequest.Overrides(container_overrides=[
            run_v2.RunJobRequest.Overrides.ContainerOverride(
                env=[run_v2.EnvVar(name=INPUT_ENV, value=payload)])])  # fmt: skip
        self._grant_catalogue(ctx)
        report_blob = self.clients.storage.bucket(self._bucket(ctx)).blob(f"{REPORTS}/{run}.json")
        try:
            run_to_end(self.clients.jobs, self.name(ctx), self.job(ctx),
                       what=f"the packages job ({action})", timeout=JOB_TIMEOUT,
                       overrides=overrides)  # fmt: skip
            report = self._report(report_blob)
        except ApplyFailed as failed:
            said = self._report(report_blob, missing_ok=True)
            if said and said.get("error"):
                raise ApplyFailed(
                    f"the packages job ({action}) failed: {said['error']}"
                ) from failed
            raise
        finally:
            with contextlib.suppress(exceptions.NotFound):
                report_blob.delete()
            self.remove(ctx)
        if not report.get("ok"):
            raise ApplyFailed(f"the packages job ({action}) failed: {report.get('error')}")
        return report

    @staticmethod
    def _report(blob: Any, *, missing_ok: bool = False) -> dict[str, Any]:
        """The job's report: it lies in the site's writable uploads mount, so the site's code
        could have replaced it; read only if at most REPORT_MAX_BYTES, that generation only."""
        try:
            blob.reload()
            if blob.size is None or int(blob.size) > REPORT_MAX_BYTES:
                raise ApplyFailed(f"the packages job's report is {blob.size} bytes, more than "
                                  f"the {REPORT_MAX_BYTES} the platform reads")  # fmt: skip
            data = blob.download_as_bytes(if_generation_match=blob.generation)
        except exceptions.NotFound:
            if missing_ok:
                return {}
            raise ApplyFailed("the packages job finished and left no report") from None
        except exceptions.PreconditionFailed:
            raise ApplyFailed("the packages job's report changed while it was read") from None
        try:
            report = json.loads(data)
        except ValueError:
            raise ApplyFailed("the packages job's report is not JSON") from None
        if not isinstance(report, dict):
            raise ApplyFailed("the packages job's report is not a JSON object")
        return report

    def remove(self, ctx: SiteContext) -> None:
        """Delete the job (no-op when gone)."""
        with contextlib.suppress(exceptions.NotFound):
            self.clients.jobs.delete_job(name=self.name(ctx)).result(timeout=JOB_TIMEOUT)

    def installed(self, ctx: SiteContext) -> list[InstalledPackage]:
        """Core, then every plugin and theme, as the site's WordPress reads them."""
        report = self._run(ctx, "list")
        core = report.get("core")
        version = core.get("version") if isinstance(core, dict) else None
        return installed_from_report(version, report.get("plugins"), report.get("themes"))

    @staticmethod
    def _check_key(key: str) -> None:
        if not KEY.fullmatch(key):
            raise ValueError(f"key {key!r} must be 1-64 letters, digits, - or _")

    def install(
        self, ctx: SiteContext, archives: list[PackageArchive], *, key: str, activate: bool
    ) -> None:
        """Plugins and themes unpacked by the job (each checked by sha256 first, what it
        replaces set aside under `key`); core as the image tag of its version; then a new
        revision so instances load the new code."""
        self._check_key(key)
        cores = [a for a in archives if a.kind == PackageKind.CORE]
        files = [a for a in archives if a.kind != PackageKind.CORE]
        if len(cores) > 1 or any(a.slug != CORE_SLUG for a in cores):
            raise ValueError(f"one core archive at most, with slug {CORE_SLUG!r}")
        catalogue = self.settings.catalogue_bucket
        if files and not catalogue:
            raise ValueError("installing plugins or themes on gcp needs AIPRESS_CATALOGUE_BUCKET")
        wanted = []
        for archive in files:
            if not SHA256.fullmatch(archive.sha256):
                raise ValueError(f"{archive.slug} {archive.version}: sha256 is not 64 hex digits")
            wanted.append({"kind": archive.kind.value, "slug": archive.slug,
                           "version": archive.version, "sha256": archive.sha256,
                           "file": catalogue_file(archive.location, str(catalogue))})  # fmt: skip
        if wanted:
            self._run(ctx, "install", key=key, archives=wanted, activate=activate)
        if cores:
            runtime = dict(ctx.resources.get("runtime") or {})
            previous = dict(runtime.get("previous_images") or {})
            # A repeat keeps the first: what ran before this key's install.
            previous.setdefault(key, runtime.get("image"))
            runtime["previous_images"] = previous
            runtime["image"] = core_image(self.runtime.image(ctx), cores[0].version)
            ctx.resources["runtime"] = runtime
        self.runtime.roll_code(ctx, f"install-{key}")

    def restore_previous(self, ctx: SiteContext, *, key: str) -> None:
        """Put back the plugins and themes set aside under `key` (removing what it added)
        and the image that ran before; a new revision when anything changed."""
        self._check_key(key)
        changed = int(self._run(ctx, "restore", key=key).get("changed", 0))
        runtime = dict(ctx.resources.get("runtime") or {})
        previous = dict(runtime.get("previous_images") or {})
        if key in previous:
            before = previous.pop(key)
            if before:
                runtime["image"] = before
            else:
                runtime.pop("image", None)
            runtime["previous_images"] = previous
            ctx.resources["runtime"] = runtime
            changed += 1
        if changed:
            self.runtime.roll_code(ctx, f"restore-{key}")

    def discard_previous(self, ctx: SiteContext, *, key: str) -> None:
        """Drop what `install(key)` set aside (no-op when gone)."""
        self._check_key(key)
        self._run(ctx, "discard", key=key)
        runtime = dict(ctx.resources.get("runtime") or {})
        previous = dict(runtime.get("previous_images") or {})
        if key in previous:
            del previous[key]
            ctx.resources["runtime"] = {**runtime, "previous_images": previous}

    def upgrade_database(self, ctx: SiteContext) -> None:
        """WordPress's database upgrade, by the job in the site's (new) image."""
        self._run(ctx, "upgrade")

    def log_mark(self, ctx: SiteContext) -> str:
        """Now (UTC, ISO 8601): the probe looks for fatals logged after it."""
        return clock.now().isoformat()

    def health(self, ctx: SiteContext, since_mark: str) -> HealthResult:
        """Homepage title, wp-login.php, /wp-json/ over the service's URL, then Cloud
        Logging for a PHP fatal since the mark."""
        uri = (ctx.resources.get("runtime") or {}).get("uri")
        if not uri:
            return HealthResult("homepage", "the runtime step recorded no service URL")
        base, headers = str(uri).rstrip("/"), probe_headers(ctx)
        try:
            home = get_page(self.http, f"{base}/", headers=headers)
            problem = homepage_problem(home.status_code, home.text, ctx.title)
            if problem:
                return HealthResult("homepage", problem)
            login = get_page(self.http, f"{base}/wp-login.php", headers=headers)
            if login.status_code != 200:
                return HealthResult("login", f"wp-login.php answers HTTP {login.status_code}")
            rest = get_page(self.http, f"{base}/wp-json/", headers=headers)
            if rest.status_code != 200:
                return HealthResult("rest", f"/wp-json/ answers HTTP {rest.status_code}")
            if not isinstance(_json(rest.text), dict):
                return HealthResult("rest", "/wp-json/ answers 200 but not a JSON object")
        except httpx.HTTPError as exc:
            return HealthResult("homepage", f"no answer from {base}: {type(exc).__name__}")
        since = datetime.fromisoformat(since_mark)
        query = LogQuery(since=since, until=clock.now(), text=FATAL, limit=1)
        fatals, _more = self.logs.read_logs(ctx, query)
        if fatals:
            first = fatals[0].message.strip().splitlines()[0][:300]
            return HealthResult("php_fatal", first)
        return HealthResult(None, "homepage, login, REST API and PHP error log are fine")


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None
