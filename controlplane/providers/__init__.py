"""Providers: `local` (one machine), `gcp` (Google Cloud), `memory` (unit tests)."""

from __future__ import annotations

from controlplane.engine.provider import Provider
from controlplane.settings import Settings


class ProviderUnavailable(Exception):
    """The configured provider cannot be built on this installation."""


def make_provider(settings: Settings) -> Provider:
    """The provider named by AIPRESS_PROVIDER."""
    if settings.provider == "memory":
        from controlplane.providers.memory import MemoryProvider

        return MemoryProvider(settings.home / "memory-provider.json")
    if settings.provider == "local":
        from controlplane.providers.local import LocalProvider

        local: Provider = LocalProvider(settings)
        return local
    try:
        from controlplane.providers.gcp import GcpProvider
    except ModuleNotFoundError as exc:
        raise ProviderUnavailable(
            "this release has no gcp provider yet: sites can be created with "
            "AIPRESS_PROVIDER=local only"
        ) from exc
    gcp: Provider = GcpProvider(settings)
    return gcp
