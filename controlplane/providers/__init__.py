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
    from controlplane.providers.gcp import GcpProvider

    try:
        gcp: Provider = GcpProvider(settings)
    except ValueError as exc:
        raise ProviderUnavailable(f"the gcp provider is not configured: {exc}") from exc
    return gcp
