"""storage step: one GCS bucket per site for uploads (uniform access, labelled), written by
the runtime's service account only."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.naming import labels

WRITER = "roles/storage.objectAdmin"
# Prefixes in the site's own bucket (the uploads volume) that are the platform's (a restore's
# working copies, the swap marker): names WordPress never makes (it trims leading dots from
# upload names), and the tenant image's Apache refuses to serve them.
RESERVED = ".aipress-"


class GcsBucket(GcpStep):
    """Creates and deletes the site's bucket."""

    def ensure(self, ctx: SiteContext) -> None:
        """Create the bucket (idempotent) and give the runtime write access."""
        client = self.clients.storage
        name = self.names(ctx).bucket
        bucket = client.bucket(name)
        if not bucket.exists():
            bucket.iam_configuration.uniform_bucket_level_access_enabled = True
            bucket.labels = labels(ctx)
            client.create_bucket(bucket, location=self.settings.gcs_location)
        bucket.reload()
        # Converge the metadata too: a bucket left by an interrupted run (or made by hand)
        # gets the labels and uniform access it must have.
        if (
            bucket.labels != labels(ctx)
            or not bucket.iam_configuration.uniform_bucket_level_access_enabled
        ):
            bucket.labels = labels(ctx)
            bucket.iam_configuration.uniform_bucket_level_access_enabled = True
            bucket.patch()
        member = f"serviceAccount:{self.runtime_account(ctx)}"
        # The bucket's own policy (no project-level grant); retried while IAM propagates.
        self.propagation.call(lambda: self._grant_writer(bucket, member))
        ctx.resources["storage"] = {"bucket": name}

    @staticmethod
    def _grant_writer(bucket: Any, member: str) -> None:
        policy = bucket.get_iam_policy(requested_policy_version=3)
        if not any(b["role"] == WRITER and member in b["members"] for b in policy.bindings):
            policy.bindings.append({"role": WRITER, "members": {member}})
            bucket.set_iam_policy(policy)

    def remove(self, ctx: SiteContext) -> None:
        """Delete the bucket and its objects (no-op when gone)."""
        name = (ctx.resources.get("storage") or {}).get("bucket") or self.names(ctx).bucket
        bucket = self.clients.storage.bucket(name)
        try:
            for blob in list(self.clients.storage.list_blobs(name)):
                blob.delete()
            bucket.delete()
        except exceptions.NotFound:
            pass
        ctx.resources.pop("storage", None)
