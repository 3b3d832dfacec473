"""The gcp provider's backups and maintenance with the real client libraries and no network:
GCS through gcp-storage-emulator behind a proxy that enforces customer-supplied encryption
keys as Cloud Storage documents them, the database dump and restore against a real MariaDB
standing in for the shared Cloud SQL instance (as its admin user), Cloud Run, Secret
Manager, IAM and the Cloud SQL Admin API against the request-checking fakes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import secrets
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest
import requests

from controlplane.engine.provider import BackupInvalid, BackupRecord, SiteContext, Staging
from controlplane.providers.gcp import GcpProvider
from controlplane.providers.gcp import backups as gcp_backups
from controlplane.providers.gcp.backups import GcsBackups, backup_key
from controlplane.providers.gcp.dns import CloudflareRecords
from controlplane.settings import Settings
from controlplane.stack.mariadb import MariaDB
from tests.conftest import LOG_FILE
from tests.integration.gcp_clients import rest_clients, storage_with_bucket
from tests.integration.gcp_fakes import (
    SITES_SUBNET,
    SQL_PRIVATE_IP,
    FakeCloudRun,
    FakeGcsKeys,
    FakeIam,
    FakeSecretManager,
    FakeSqlAdmin,
)
from tests.integration.test_gcp_provider import IMAGE, PROJECT, ZONE, cloudsql_admin, cloudsql_user
from tests.live import serve, serve_many
from tests.tls_certificate import self_signed

pytestmark = pytest.mark.integration
INSTANCE = "aipress-shared"
HOSTILE = "wp_x`; DROP DATABASE mysql; --\n;\nz"  # a plugin may name its table anything


class Vault:
    """The site's credentials, in memory."""

    def __init__(self) -> None:
        self.stored: dict[str, tuple[str, str]] = {}

    def get_or_create(self, kind: str, username: str) -> tuple[str, str]:
        """As the control plane's vault: generated once."""
        return self.stored.setdefault(kind, (username, secrets.token_urlsafe(16)))

    def get(self, kind: str) -> tuple[str, str] | None:
        """Stored, if any."""
        return self.stored.get(kind)


@dataclass
class Gcp:
    """The fakes, the provider aimed at them, and a site made by the provider's own steps."""

    provider: GcpProvider
    backups: GcsBackups
    keys: FakeGcsKeys
    run: FakeCloudRun
    sql: FakeSqlAdmin
    storage: Any
    mariadb: MariaDB
    ctx: SiteContext
    bucket: str  # the backups bucket
    gcs_url: str  # the key-checking proxy in front of the emulator, over TLS

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        """Rows of one statement against the instance."""
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            rows = list(cur.fetchall())
            conn.commit()
            return rows

    @property
    def db(self) -> str:
        """The site's database."""
        return str(self.ctx.resources["database"]["name"])

    @property
    def uploads(self) -> Any:
        """The site's bucket."""
        return self.storage.bucket(self.ctx.resources["storage"]["bucket"])

    def live_files(self) -> dict[str, bytes]:
        """Name -> content of every upload (not the restore's working copies)."""
        return {b.name: b.download_as_bytes() for b in self.storage.list_blobs(self.uploads.name)
                if not b.name.startswith(".aipress-")}  # fmt: skip


def _context(site: str, password: str) -> SiteContext:
    return SiteContext(
        tenant_id="acme", site_id=secrets.token_hex(16), site_name=site, title="Crumbs",
        admin_email="o@acme.example", admin_user="owner", domains=[], credentials=Vault(),
        backup_password=password,
    )  # fmt: skip


@pytest.fixture
def gcp(gcs: str, mariadb: MariaDB, tmp_path: Any) -> Iterator[Gcp]:
    iam = FakeIam()
    run, sm = FakeCloudRun(IMAGE), FakeSecretManager(iam)
    run.secrets, run.project = sm, PROJECT
    run.database = ("127.0.0.1", mariadb.port)
    keys, sql = FakeGcsKeys(gcs), FakeSqlAdmin(PROJECT, INSTANCE, disk_gb=10)
    tls = self_signed(tmp_path, "127.0.0.1", ips=("127.0.0.1",), stem="gcs")  # keys need https
    with (serve_many(run.app(), sm.app(), iam.app(), (keys.app(), tls), sql.app()) as (
            run_url, sm_url, iam_url, gcs_url, sql_url), ExitStack() as stack):  # fmt: skip
        run.base_url = run_url
        storage_client, bucket = storage_with_bucket(PROJECT, gcs_url, ca=tls[0])
        # Closed before its server stops (the ExitStack unwinds first): a server closing a TLS
        # connection waits for the client's close_notify (asyncio's 30 s) on an idle pooled one.
        stack.enter_context(closing(storage_client))
        clients = rest_clients(
            run_url, sm_url, iam_url, storage_client,
            rest=requests.Session(), sqladmin_url=sql_url,
            sql_connect=cloudsql_admin(mariadb), sql_connect_as=cloudsql_user(mariadb),
        )  # fmt: skip
        settings = Settings(
            provider="memory", home=tmp_path / "home", log_file=LOG_FILE, gcp_project=PROJECT,
            database_url=f"sqlite:///{tmp_path / 'cp.db'}", gcp_location="us-central1",
            cloudsql_instance=f"{PROJECT}:us-central1:{INSTANCE}", tenant_image=IMAGE, cloudsql_private_ip=SQL_PRIVATE_IP, sites_subnetwork=SITES_SUBNET,
            backups_bucket=bucket, platform_domain="sites.example.com",
            dns_provider="cloudflare", cloudflare_zone_id=ZONE,
            gcp_iam_retry_seconds=0.01, gcp_iam_propagation_seconds=10,
        )  # fmt: skip
        provider = GcpProvider(settings, clients, CloudflareRecords(None, ZONE))
        provider.wordpress.ready_timeout = 4  # type: ignore[attr-defined]
        ctx = _context(f"crumbs{secrets.token_hex(2)}", secrets.token_urlsafe(24))
        for step in (provider.database, provider.secrets, provider.storage):
            step.ensure(ctx)
        assert isinstance(provider.backups, GcsBackups)
        yield Gcp(
            provider,
            provider.backups,
            keys,
            run,
            sql,
            storage_client,
            mariadb,
            ctx,
            bucket,
            gcs_url,
        )
        db = str(ctx.resources["database"]["name"])
        provider.database.remove(ctx)
        provider.storage.remove(ctx)
        with mariadb.connect() as conn, conn.cursor() as cur:  # side schemas go with the site
            cur.execute("SHOW DATABASES LIKE %s", (db.replace("_", "\\_") + "%",))
            assert cur.fetchall() == ()
    for fake in (run, sm, iam, keys, sql):
        fake.assert_clean()


def test_a_key_sent_over_plain_http_is_refused(gcs: str) -> None:
    """Cloud Storage takes customer-supplied keys over HTTPS only: the same client and key
    that work over TLS (every test above) are refused over http, and nothing is written."""
    keys = FakeGcsKeys(gcs)
    with serve(keys.app()) as plain_url:
        storage_client, bucket = storage_with_bucket(PROJECT, plain_url)
        blob = storage_client.bucket(bucket).blob("x", encryption_key=secrets.token_bytes(32))
        with pytest.raises(Exception, match="must be sent over HTTPS"):
            blob.upload_from_string(b"secret")
        assert not storage_client.bucket(bucket).blob("x").exists()
    assert keys.keyed == [] and len(keys.problems) == 1


def _fill(gcp: Gcp) -> None:
    """A WordPress-like database (more rows than one INSERT holds, binary data, zero dates,
    a serialized option, a hostile table name) and three uploads."""
    db = gcp.db
    gcp.query(f"CREATE TABLE `{db}`.wp_posts (ID BIGINT PRIMARY KEY, post_title TEXT, "
              "post_content LONGTEXT, post_date_gmt DATETIME NOT NULL DEFAULT "
              "'0000-00-00 00:00:00', body BLOB)")  # fmt: skip
    rows = [(i, f"post {i} 'quoted' \\ ; \n", "é" * 400 + "https://old.example/x", b"\x00\xff" * 300)
            for i in range(1500)]  # fmt: skip
    with gcp.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.executemany(f"INSERT INTO `{db}`.wp_posts (ID, post_title, post_content, body) "
                        "VALUES (%s, %s, %s, %s)", rows)  # fmt: skip
        conn.commit()
    gcp.query(f"CREATE TABLE `{db}`.wp_options (option_id INT PRIMARY KEY, option_name "
              "VARCHAR(191), option_value LONGTEXT)")  # fmt: skip
    widget = 'a:2:{s:3:"url";s:24:"https://old.example/shop";s:5:"count";i:3;}'
    gcp.query(f"INSERT INTO `{db}`.wp_options VALUES (1, 'siteurl', 'https://old.example'), "
              "(2, 'widget', %s)", (widget,))  # fmt: skip
    hostile = HOSTILE.replace("`", "``")
    gcp.query(f"CREATE TABLE `{db}`.`{hostile}` (id INT PRIMARY KEY, v TEXT)")
    gcp.query(f"INSERT INTO `{db}`.`{hostile}` VALUES (1, 'x'';DROP TABLE wp_posts;--')")
    for name, data in (("2026/11/cake.jpg", b"jpeg" * 5000), ("2026/11/pie.png", b"png"),
                       ("fonts/a b+c.woff2", secrets.token_bytes(300_000))):  # fmt: skip
        gcp.uploads.blob(name).upload_from_string(data)


def _state(gcp: Gcp, db: str | None = None) -> tuple[Any, ...]:
    db = db or gcp.db
    tables = sorted(r[0] for r in gcp.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (db,)))  # fmt: skip
    sums = tuple(gcp.query(f"CHECKSUM TABLE {', '.join(f'`{db}`.`' + t.replace('`', '``') + '`' for t in tables)}")) if tables else ()  # fmt: skip
    return tuple(tables), tuple(r[1] for r in sums)


Snapshot = tuple[tuple[Any, ...], dict[str, bytes]]  # _state and Gcp.live_files


def _break(gcp: Gcp) -> None:
    gcp.query(f"DROP TABLE `{gcp.db}`.wp_options")
    gcp.query(f"DELETE FROM `{gcp.db}`.wp_posts WHERE ID > 10")
    gcp.uploads.blob("2026/11/cake.jpg").delete()
    gcp.uploads.blob("2026/12/new.jpg").upload_from_string(b"after the backup")


def _backed_up_then_broken(gcp: Gcp) -> tuple[BackupRecord, Snapshot, Snapshot]:
    """A filled site backed up and then broken: the backup, the site's state (tables and
    live files) before the break and after it."""
    _fill(gcp)
    before = (_state(gcp), gcp.live_files())
    record = gcp.backups.backup(gcp.ctx, _backup_id())
    _break(gcp)
    return record, before, (_state(gcp), gcp.live_files())


def _backup_id() -> str:
    return secrets.token_hex(16)


def test_a_backup_is_encrypted_per_tenant_checked_and_idempotent(gcp: Gcp) -> None:
    _fill(gcp)
    backup_id = _backup_id()
    record = gcp.backups.backup(gcp.ctx, backup_id)
    prefix = f"acme/{gcp.ctx.site_name}/{backup_id}/"
    assert record.location == f"gs://{gcp.bucket}/{prefix}"
    saved = {
        b.name.removeprefix(prefix): b for b in gcp.storage.list_blobs(gcp.bucket, prefix=prefix)
    }
    assert set(saved) == {"manifest.json", "database.sql.gz", "files/2026/11/cake.jpg",
                          "files/2026/11/pie.png", "files/fonts/a b+c.woff2"}  # fmt: skip
    # Every object carries this tenant's key: Google keeps its hash, never the key.
    key = backup_key("acme", gcp.ctx.backup_password)
    key_hash = __import__("base64").b64encode(hashlib.sha256(key).digest()).decode()
    assert {gcp.keys.keys[(gcp.bucket, prefix + n)] for n in saved} == {key_hash}
    # Without a key the data cannot be read, nor listed checksums seen; with the key it reads.
    with pytest.raises(Exception, match="customer-supplied encryption key"):
        gcp.storage.bucket(gcp.bucket).blob(prefix + "files/2026/11/pie.png").download_as_bytes()
    assert all(b.crc32c is None for b in saved.values())
    keyed = gcp.storage.bucket(gcp.bucket).blob(
        prefix + "files/2026/11/pie.png", encryption_key=key
    )
    assert keyed.download_as_bytes() == b"png"
    # Over TLS (Cloud Storage takes keys over HTTPS only): the key headers reached the
    # server on the backup's writes, and a plain-HTTP request carrying a key is refused.
    assert gcp.gcs_url.startswith("https://")
    assert ("GET", f"/download/storage/v1/b/{gcp.bucket}/o/{prefix}files/2026/11/pie.png",
            key_hash) in [(m, unquote(p), k) for m, p, k in gcp.keys.keyed]  # fmt: skip
    assert {k for m, _, k in gcp.keys.keyed if m in ("POST", "PUT")} == {key_hash}
    # Another tenant's key (another password) opens nothing.
    other = _context(gcp.ctx.site_name, secrets.token_urlsafe(24))
    other.tenant_id = "acme"
    with pytest.raises(BackupInvalid, match="cannot be read with this tenant's key"):
        gcp.backups.verify(other, record)
    assert backup_key("acme", "p") != backup_key("globex", "p")
    # The manifest (written last) records every part's size and sha256; the record's
    # checksums are the dump's and the file list's.
    manifest = json.loads(gcp.storage.bucket(gcp.bucket).blob(
        prefix + "manifest.json", encryption_key=key).download_as_bytes())  # fmt: skip
    dump = gcp.storage.bucket(gcp.bucket).blob(prefix + "database.sql.gz", encryption_key=key)
    packed = dump.download_as_bytes()
    assert record.checksums["database"] == hashlib.sha256(packed).hexdigest()
    assert manifest["database"]["sql_sha256"] == hashlib.sha256(gzip.decompress(packed)).hexdigest()
    assert {f["name"]: f["sha256"] for f in manifest["files"]}["2026/11/pie.png"] == (
        hashlib.sha256(b"png").hexdigest())  # fmt: skip
    assert record.size_bytes == len(packed) + 20_000 + 3 + 300_000
    sql = gzip.decompress(packed).decode()
    assert sql.count("INSERT INTO `wp_posts` VALUES (") >= 2  # more than one statement's rows
    assert sql.count("),(") + sql.count("INSERT INTO `wp_posts` VALUES (") >= 1500
    gcp.backups.verify(gcp.ctx, record)
    # The same id again: the finished backup is found, nothing is written.
    writes = len(gcp.keys.requests)
    assert gcp.backups.backup(gcp.ctx, backup_id) == record
    assert [r for r in gcp.keys.requests[writes:] if r[0] != "GET"] == []


def test_a_corrupted_or_incomplete_backup_fails_verification(gcp: Gcp) -> None:
    _fill(gcp)
    record = gcp.backups.backup(gcp.ctx, _backup_id())
    where = record.location.split("/", 3)[3]
    key = backup_key("acme", gcp.ctx.backup_password)
    blob = gcp.storage.bucket(gcp.bucket).blob(where + "files/2026/11/pie.png", encryption_key=key)
    blob.upload_from_string(b"PNG")  # same size, other bytes
    with pytest.raises(BackupInvalid, match=r"pie\.png is corrupted"):
        gcp.backups.verify(gcp.ctx, record)
    with pytest.raises(BackupInvalid, match=r"pie\.png"):
        gcp.backups.stage(gcp.ctx, record)
    blob.delete()
    with pytest.raises(BackupInvalid, match=r"pie\.png is missing"):
        gcp.backups.verify(gcp.ctx, record)
    forged = BackupRecord(record.location, record.size_bytes, record.added_bytes,
                          {**record.checksums, "database": "0" * 64})  # fmt: skip
    with pytest.raises(BackupInvalid, match="dump's checksum differs"):
        gcp.backups.verify(gcp.ctx, forged)
    # A dump holding a statement no dump makes is refused before it runs (the import runs
    # as the instance's admin), and the side database is dropped.
    dump = gcp.storage.bucket(gcp.bucket).blob(where + "database.sql.gz", encryption_key=key)
    dump.upload_from_string(gzip.compress(b"SET NAMES utf8mb4;\nDROP DATABASE mysql;\n"))
    gcp.backups.unstage(gcp.ctx)  # what the failed stage above left (the engine's undo)
    with pytest.raises(BackupInvalid, match="a statement no dump makes"):
        gcp.backups._import(gcp_backups.Where.parse(record.location), key,
                            {"sha256": "0" * 64}, gcp.db + "__restore")  # fmt: skip
    assert "mysql" in {r[0] for r in gcp.query("SHOW DATABASES")}
    assert gcp.db + "__restore" not in {r[0] for r in gcp.query("SHOW DATABASES")}
    gcp.storage.bucket(gcp.bucket).blob(where + "manifest.json").delete()
    with pytest.raises(BackupInvalid, match="no manifest"):
        gcp.backups.verify(gcp.ctx, record)


def test_restore_stages_swaps_in_one_rename_and_swaps_back(gcp: Gcp) -> None:
    record, (before, files_before), (broken, files_broken) = _backed_up_then_broken(gcp)
    gcp.backups.check_space(gcp.ctx, record)
    gcp.backups.stage(gcp.ctx, record)
    gcp.backups.stage(gcp.ctx, record)  # idempotent: staged again from scratch
    assert _state(gcp, gcp.db + "__restore") == before  # the hostile table too, intact
    assert _state(gcp) == broken and gcp.live_files() == files_broken
    gcp.backups.swap(gcp.ctx)
    gcp.backups.swap(gcp.ctx)  # a re-run changes nothing
    assert _state(gcp) == before and gcp.live_files() == files_before
    assert _state(gcp, gcp.db + "__previous") == broken
    assert {n.removeprefix(".aipress-previous/") for n in
            [b.name for b in gcp.storage.list_blobs(gcp.uploads.name, prefix=".aipress-previous/")]} == set(files_broken)  # fmt: skip
    gcp.backups.unswap(gcp.ctx)
    assert _state(gcp) == broken and gcp.live_files() == files_broken
    gcp.backups.unswap(gcp.ctx)  # no-op now
    gcp.backups.swap(gcp.ctx)
    gcp.backups.discard_previous(gcp.ctx)
    gcp.backups.unstage(gcp.ctx)
    assert _state(gcp) == before and gcp.live_files() == files_before
    schemas = {r[0] for r in gcp.query("SHOW DATABASES")}
    assert not {gcp.db + "__previous", gcp.db + "__restore"} & schemas


class Crash(Exception):
    """A SIGKILL stand-in: the step stops between two object moves."""


def _crash_after(monkeypatch: pytest.MonkeyPatch, moves: int) -> None:
    real = GcsBackups._move
    done = [0]

    def move(self: GcsBackups, bucket: str, source: str, target: str) -> None:
        if done[0] == moves:
            raise Crash
        done[0] += 1
        real(self, bucket, source, target)

    monkeypatch.setattr(GcsBackups, "_move", move)


@pytest.mark.parametrize("moves", [0, 2, 3, 5])
def test_a_swap_killed_between_object_moves_is_finished_or_undone(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch, moves: int
) -> None:
    record, (before, files_before), (broken, files_broken) = _backed_up_then_broken(gcp)
    gcp.backups.stage(gcp.ctx, record)
    with monkeypatch.context() as patch:
        _crash_after(patch, moves)
        with pytest.raises(Crash):
            gcp.backups.swap(gcp.ctx)
    # Nothing may drop the copies a half-done swap still needs.
    for step in (gcp.backups.unstage, gcp.backups.discard_previous):
        with pytest.raises(RuntimeError, match="a swap of this site is under way"):
            step(gcp.ctx)
    # Undone from wherever it stopped: exactly the site as it was.
    gcp.backups.unswap(gcp.ctx)
    assert _state(gcp) == broken
    assert gcp.live_files() == files_broken
    # Killed again and re-run: finished, exactly the backup.
    with monkeypatch.context() as patch:
        _crash_after(patch, moves)
        with pytest.raises(Crash):
            gcp.backups.swap(gcp.ctx)
    gcp.backups.swap(gcp.ctx)
    assert _state(gcp) == before
    assert gcp.live_files() == files_before


def test_a_site_made_from_another_sites_backup_gets_its_own_address(gcp: Gcp) -> None:
    _fill(gcp)
    record = gcp.backups.backup(gcp.ctx, _backup_id())
    report = gcp.backups.stage(gcp.ctx, record, Staging("https://old.example/"))
    side = gcp.db + "__restore"
    new = f"https://{gcp.ctx.site_name}.acme.sites.example.com"
    # Through the search-replace job: the tenant image's script, run as the site's database
    # user, which holds the side schema for the run only; the job and its report go after.
    assert [r["database"] for r in gcp.run.rewrites] == [side]
    assert gcp.run.rewrites[0]["from"] == "https://old.example" and gcp.run.rewrites[0]["to"] == new
    assert gcp.run.jobs == {}
    assert report is not None and report.summary() == "rewrote 1502 values in 2 tables"
    assert report.tables == {"wp_options": {"option_value": 2}, "wp_posts": {"post_content": 1500}}
    assert gcp.query("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                     "AND table_name LIKE 'aipress%%'", (side,)) == []  # fmt: skip
    user = gcp.ctx.resources["database"]["user"]
    grants = " ".join(g for (g,) in gcp.query("SHOW GRANTS FOR %s@'%%'", (user,)))
    assert "__restore" not in grants.replace("\\", ""), grants
    options = dict(gcp.query(f"SELECT option_name, option_value FROM `{side}`.wp_options"))
    assert options["siteurl"] == new
    url = f"{new}/shop"
    assert options["widget"] == f'a:2:{{s:3:"url";s:{len(url)}:"{url}";s:5:"count";i:3;}}'
    [(content,)] = gcp.query(f"SELECT post_content FROM `{side}`.wp_posts WHERE ID = 7")
    assert content.endswith(f"{new}/x")


def test_space_is_checked_against_the_instances_disk(gcp: Gcp) -> None:
    _fill(gcp)
    record = gcp.backups.backup(gcp.ctx, _backup_id())
    gcp.backups.check_space(gcp.ctx, record)  # 10 GB disk, a few MB used
    gcp.sql.settings["dataDiskSizeGb"] = "0"
    with pytest.raises(ValueError, match="raise its disk \\(dataDiskSizeGb\\)"):
        gcp.backups.check_space(gcp.ctx, record)
    gcp.sql.settings.update(storageAutoResize=True, storageAutoResizeLimit="0")
    gcp.backups.check_space(gcp.ctx, record)  # grows by itself, no limit
    gcp.sql.settings["storageAutoResizeLimit"] = "0"
    gcp.sql.settings["storageAutoResize"] = False
    assert ("GET", f"/v1/projects/{PROJECT}/instances/{INSTANCE}", {}) in gcp.sql.requests


def test_the_download_is_a_tar_gz_of_the_dump_and_the_uploads(gcp: Gcp) -> None:
    _fill(gcp)
    record = gcp.backups.backup(gcp.ctx, _backup_id())
    chunks = list(gcp.backups.archive("acme", gcp.ctx.backup_password, record))
    assert len(chunks) > 3 and max(len(c) for c in chunks) < 2 << 20
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert set(members) == {"database.sql", "wp-content/uploads/2026/11/cake.jpg",
                            "wp-content/uploads/2026/11/pie.png",
                            "wp-content/uploads/fonts/a b+c.woff2"}  # fmt: skip
    assert members["wp-content/uploads/2026/11/pie.png"] == b"png"
    assert members["database.sql"].startswith(b"SET NAMES utf8mb4;")
    with pytest.raises(ValueError, match="not a backup of tenant globex"):
        list(gcp.backups.archive("globex", gcp.ctx.backup_password, record))


def test_forget_deletes_the_backups_objects_manifest_first(gcp: Gcp) -> None:
    _fill(gcp)
    kept, gone = (
        gcp.backups.backup(gcp.ctx, _backup_id()),
        gcp.backups.backup(gcp.ctx, _backup_id()),
    )
    start = len(gcp.keys.requests)
    gcp.backups.forget("acme", gcp.ctx.backup_password, [gone])
    gcp.backups.forget("acme", gcp.ctx.backup_password, [gone])  # already gone: no-op
    deletes = [p for m, p in gcp.keys.requests[start:] if m == "DELETE"]
    assert deletes[0].endswith("/manifest.json")
    prefix = gone.location.split("/", 3)[3]
    assert list(gcp.storage.list_blobs(gcp.bucket, prefix=prefix)) == []
    gcp.backups.verify(gcp.ctx, kept)
    with pytest.raises(ValueError, match="not a backup of tenant globex"):
        gcp.backups.forget("globex", "x", [kept])


def test_maintenance_answers_503_and_lets_the_platforms_probe_through(gcp: Gcp) -> None:
    provider, ctx = gcp.provider, gcp.ctx
    provider.runtime.ensure(ctx)
    provider.wordpress.ensure(ctx)
    uri = ctx.resources["runtime"]["uri"]
    provider.runtime.maintenance(ctx, True)
    [service] = gcp.run.services.values()
    env = {e["name"]: e for e in service["template"]["containers"][0]["env"]}
    assert env["AIPRESS_MAINTENANCE"]["value"] == "on"
    assert "value" not in env["AIPRESS_PROBE_TOKEN"]  # a Secret Manager reference
    answer = requests.get(f"{uri}/", timeout=5)
    assert answer.status_code == 503
    assert (answer.headers["retry-after"], answer.headers["cache-control"]) == ("30", "no-store")
    assert (
        requests.get(f"{uri}/", headers={"X-AIPress-Probe": "guess"}, timeout=5).status_code == 503
    )
    assert requests.get(f"{uri}/aipress-probe", timeout=5).status_code == 200  # startup probe
    provider.wordpress.ensure(ctx)  # the restore's readiness check gets the site
    provider.runtime.maintenance(ctx, False)
    assert requests.get(f"{uri}/", timeout=5).status_code == 200
    [service] = gcp.run.services.values()
    assert "AIPRESS_MAINTENANCE" not in {
        e["name"] for e in service["template"]["containers"][0]["env"]
    }
    provider.runtime.remove(ctx)
    provider.secrets.remove(ctx)
    assert not [s for s in gcp.run.secrets.secrets if s.endswith("-probe-token")]  # type: ignore[union-attr]


def test_dump_statements_split_back_whole(gcp: Gcp) -> None:
    dump = list(gcp_backups.split_statements(["SET NAMES utf8mb4;\nINSERT INTO `a` VALUES ('x;",
                                              "\ny'),('\\';\n');\nCREATE TABLE `b;\n` (\n i INT\n);\n"]))  # fmt: skip
    assert dump == ["SET NAMES utf8mb4;", "INSERT INTO `a` VALUES ('x;\ny'),('\\';\n');",
                    "CREATE TABLE `b;\n` (\n i INT\n);"]  # fmt: skip
    with pytest.raises(BackupInvalid, match="truncated"):
        list(gcp_backups.split_statements(["INSERT INTO `a` VALUES ('x"]))
