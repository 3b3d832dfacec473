"""Backups: mariadb-dump of the database and a tarball of wp-content, with a manifest."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from controlplane.engine.provider import SiteContext
from controlplane.kernel import clock
from controlplane.providers.local.base import LocalStep
from controlplane.stack.process import CLEAN_ENV, StackError


class BackupStep(LocalStep):
    """Writes backups/<tenant>/<site>/<timestamp>-<label>/ (root-only)."""

    def backup(self, ctx: SiteContext, label: str) -> str:
        """Dump the database and archive wp-content; return the backup's directory."""
        names = self.names(ctx)
        self.stack.ensure_running()
        stamp = clock.now().strftime("%Y%m%dT%H%M%S%fZ")
        target = self.stack.backups_dir / ctx.tenant_id / ctx.site_name / f"{stamp}-{label}"
        target.mkdir(parents=True, mode=0o700)
        manifest: dict[str, object] = {
            "tenant": ctx.tenant_id,
            "site": ctx.site_name,
            "label": label,
            "created_at": stamp,
            "database": names.db_name,
            "files": [],
        }
        if self._database_exists(names.db_name):
            self._dump(names.db_name, target / "database.sql.gz")
            manifest["files"].append("database.sql.gz")  # type: ignore[attr-defined]
        content = names.root / "htdocs" / "wp-content"
        if content.is_dir():
            archive = subprocess.run(
                ["tar", "--warning=no-file-changed", "--warning=no-file-removed", "-czf",
                 str(target / "wp-content.tar.gz"), "-C", str(content.parent), "wp-content"],
                capture_output=True, text=True, env=CLEAN_ENV,
            )  # fmt: skip
            # 1 is GNU tar's "a file changed while it was read": a live site writes (cron,
            # caches); the archive is complete and holds what each file held when read.
            if archive.returncode not in (0, 1):
                raise StackError(f"archiving wp-content failed: {archive.stderr[-1000:]}")
            manifest["files"].append("wp-content.tar.gz")  # type: ignore[attr-defined]
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return str(target)

    def _database_exists(self, name: str) -> bool:
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
            return cur.fetchone() is not None

    def _dump(self, database: str, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            dump = subprocess.Popen(
                ["mariadb-dump", f"--socket={self.stack.mariadb.socket}", "--user=root",
                 "--single-transaction", "--routines", "--triggers", database],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=CLEAN_ENV,
            )  # fmt: skip
            gzip = subprocess.run(["gzip", "-c"], stdin=dump.stdout, stdout=out, check=False)
            _, err = dump.communicate()
            if dump.returncode != 0 or gzip.returncode != 0:
                raise StackError(f"mariadb-dump of {database} failed: {err.decode()[-1000:]}")
