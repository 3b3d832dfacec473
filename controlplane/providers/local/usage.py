"""What the local sites use: their files' bytes and their databases' bytes (for metering
and for apportioning the shared database instance)."""

from __future__ import annotations

import os
from pathlib import Path

from controlplane.engine.provider import SiteContext
from controlplane.providers.local.base import LocalStep


def directory_bytes(path: Path) -> int:
    """Apparent size of the regular files under `path` (links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += stat.st_size
    return total


class LocalUsage(LocalStep):
    """Reads usage from the site's directory and MariaDB's information_schema."""

    def storage_bytes(self, ctx: SiteContext) -> int:
        """Bytes under the site's own wp-content (core is shared, hard-linked)."""
        return directory_bytes(self.names(ctx).root / "htdocs" / "wp-content")

    def database_bytes(self) -> dict[str, int]:
        """Data + index bytes of every database on the local MariaDB."""
        self.stack.ensure_running()
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT table_schema, SUM(data_length + index_length) "
                "FROM information_schema.tables GROUP BY table_schema"
            )
            return {str(schema): int(size or 0) for schema, size in cur.fetchall()}
