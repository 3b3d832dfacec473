"""The `aipress` CLI run against a served control plane (memory provider), as the admin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from click.testing import Result
from typer.testing import CliRunner

from controlplane.api.app import create_app
from controlplane.cli import app as cli_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.agent_fixtures import make_site
from tests.live import serve


@dataclass
class ServedCli:
    """The CLI pointed at a live server; `site_id` is the ready site globex/shop."""

    url: str
    token: str
    site_id: str
    runner: CliRunner

    def __call__(self, *args: str, stdin: str | None = None) -> Result:
        """Run `aipress ARGS --url URL --token TOKEN`, with `stdin` as its input."""
        return self.runner.invoke(
            cli_app, [*args, "--url", self.url, "--token", self.token], input=stdin
        )


@contextmanager
def served_cli(
    settings: Settings, memory_provider: MemoryProvider, issuer: LocalTokenIssuer
) -> Iterator[ServedCli]:
    """Serve the control plane, make tenant globex with a ready site shop, yield its CLI."""
    app = create_app(
        settings, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    with serve(app) as url:
        token = issuer.issue("root", Role.ADMIN)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as admin:
            admin.post("/v1/tenants", json={"id": "globex", "name": "Globex"})
            make_site(admin, "globex", "shop")
            site_id = admin.get("/v1/tenants/globex/sites/shop").json()["id"]
        yield ServedCli(url, token, site_id, CliRunner())
