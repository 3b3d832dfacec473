"""Google API clients pointed at the fakes (tests/integration/gcp_fakes.py), anonymous."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2, secretmanager, storage

from controlplane.providers.gcp.base import GcpClients
from controlplane.providers.gcp.identity import IamServiceAccounts


def run_and_secret_clients(run_url: str, secrets_url: str) -> dict[str, Any]:
    """GcpClients' `run`, `jobs` and `secrets` on the fake Cloud Run and Secret Manager."""
    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
    run, secrets = ClientOptions(api_endpoint=run_url), ClientOptions(api_endpoint=secrets_url)
    return {
        "run": run_v2.ServicesClient(credentials=anonymous, transport="rest", client_options=run),
        "jobs": run_v2.JobsClient(credentials=anonymous, transport="rest", client_options=run),
        "secrets": secretmanager.SecretManagerServiceClient(
            credentials=anonymous, transport="rest", client_options=secrets
        ),
    }


def storage_with_bucket(
    project: str, gcs_url: str, ca: Path | None = None
) -> tuple[storage.Client, str]:
    """A Cloud Storage client on the fake at `gcs_url` (trusting the certificate `ca` for
    https), and a fresh backups bucket made in it."""
    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
    session = requests.Session()
    session.verify = str(ca) if ca else True
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace `verify` per request
    client = storage.Client(project=project, credentials=anonymous, _http=session,
                            client_options={"api_endpoint": gcs_url})  # fmt: skip
    bucket = f"aipress-backups-{secrets.token_hex(4)}"
    client.create_bucket(bucket)
    return client, bucket


def rest_clients(
    run_url: str, sm_url: str, iam_url: str, storage_client: storage.Client, **more: Any
) -> GcpClients:
    """The real client libraries over REST, aimed at the fakes (and `more` of them)."""
    return GcpClients(
        **run_and_secret_clients(run_url, sm_url),
        storage=storage_client,
        iam=IamServiceAccounts(requests.Session(), iam_url),
        **more,
    )
