"""Imports through the API with the memory provider: an archive or a dump (with content) is
imported at the site's address; every malicious or malformed upload is refused with a 4xx
that says what is wrong and leaves nothing (no operation, no file under imports/, the site
as it was); what only the operation's check finds rolls it back, leaving nothing too."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient

from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Principal, Role
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.services.imports import start_import
from controlplane.settings import Settings
from tests.cli_harness import served_cli
from tests.conftest import LOG_FILE, AuthHeaders, wait_for_operation
from tests.import_fixtures import (
    DUMP,
    OLD_PREFIX,
    OLD_URL,
    SETUID,
    TITLE,
    Member,
    bomb,
    good_archive,
    tar_gz,
    with_content,
)

SITES = "/v1/tenants/acme/sites"
URL = "http://crumbs.acme.memory.invalid/"
MAX_BYTES, MAX_UNPACKED = 1 << 20, 4 << 20


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The memory provider's settings with small import limits."""
    return Settings(
        provider="memory", home=tmp_path / "home", log_file=LOG_FILE, log_level="DEBUG",
        import_max_bytes=MAX_BYTES, import_max_unpacked_bytes=MAX_UNPACKED,
    )  # fmt: skip


@pytest.fixture
def owner(client: TestClient, auth: AuthHeaders) -> dict[str, str]:
    """The tenant acme's user, with a ready site crumbs."""
    answer = client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=auth("admin"))
    assert answer.status_code == 201, answer.text
    headers = auth("tenant", "acme")
    made = client.post(SITES, json={"name": "crumbs", "admin_email": "o@acme.org"}, headers=headers)
    assert wait_for_operation(client, made.json()["operation"]["id"], headers)["status"] == (
        "succeeded"
    )
    return headers


def _site_id(client: TestClient, headers: dict[str, str]) -> str:
    site_id: str = client.get(f"{SITES}/crumbs", headers=headers).json()["id"]
    return site_id


def _post(
    client: TestClient, headers: dict[str, str], files: dict[str, bytes], **fields: str
) -> Any:
    data = {"old_url": OLD_URL, **fields}
    sent = {name: (f"{name}.bin", body) for name, body in files.items()}
    return client.post(f"{SITES}/crumbs/import", files=sent, data=data, headers=headers)


def _leftovers(settings: Settings) -> list[str]:
    root = settings.home / "imports"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_an_archive_is_imported_at_the_sites_address(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider, settings: Settings
) -> None:
    answer = _post(client, owner, {"archive": good_archive(gzipped_dump=True)})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["operation"]["kind"] == "import_site"
    assert body["pre_import_backup"]["kind"] == "pre-import"
    assert [s["name"] for s in body["operation"]["steps"]] == [
        "check", "pre_import", "maintenance", "stage", "swap", "probe", "finish",
    ]  # fmt: skip
    final = wait_for_operation(client, body["operation"]["id"], owner)
    assert final["status"] == "succeeded", final
    live = memory_provider.content(_site_id(client, owner))
    # The rewrite's report is on the operation (what changed where, never a value).
    rewrite = final["rewrite"]
    assert rewrite["cells"] >= 1 and set(rewrite["tables"]) == {"database"}, rewrite
    assert OLD_URL not in str(rewrite) and not rewrite["dry_run"]
    assert OLD_URL not in live["database"] and f"'{URL.rstrip('/')}'" in live["database"]
    assert "`wp_options`" in live["database"] and OLD_PREFIX not in live["database"]
    assert TITLE in live["database"] and "administrator=" not in live["database"]
    assert "wp-content/uploads/2024/cat.png" in live["files"]
    pre = client.get(
        f"{SITES}/crumbs/backups/{body['pre_import_backup']['id']}", headers=owner
    ).json()
    assert pre["status"] == "succeeded"
    assert _leftovers(settings) == []  # the upload is gone
    site = client.get(f"{SITES}/crumbs", headers=owner).json()
    assert site["status"] == "ready" and "import" in site["allowed_actions"]
    assert site["title"] == TITLE  # the probe looked for the imported site's title


def test_a_dump_alone_keeps_the_files_and_reset_makes_the_platform_admin(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider, settings: Settings
) -> None:
    site_id = _site_id(client, owner)
    files_before = memory_provider.content(site_id)["files"]
    answer = _post(client, owner, {"dump": gzip.compress(DUMP.encode())}, admin="reset")
    assert answer.status_code == 202, answer.text
    final = wait_for_operation(client, answer.json()["operation"]["id"], owner)
    assert final["status"] == "succeeded", final
    live = memory_provider.content(site_id)
    assert live["files"] == files_before
    assert "administrator=" in live["database"] and TITLE in live["database"]
    assert _leftovers(settings) == []


def test_a_dump_with_content(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    content = tar_gz([Member("wp-content/uploads/a.jpg", data=b"jpg")])
    answer = _post(client, owner, {"dump": DUMP.encode(), "content": content})
    assert answer.status_code == 202, answer.text
    assert wait_for_operation(client, answer.json()["operation"]["id"], owner)["status"] == (
        "succeeded"
    )
    assert "wp-content/uploads/a.jpg" in memory_provider.content(_site_id(client, owner))["files"]


NOT_WORDPRESS = "CREATE TABLE `things` (`id` int);\nINSERT INTO `things` VALUES (1);\n"
TWO_SITES = DUMP + DUMP.replace(OLD_PREFIX, "other_")
SWITCHES = "CREATE DATABASE `other`;\nUSE `other`;\n" + DUMP

# (case, form files, form fields, status, what the answer says)
REFUSED: list[tuple[str, dict[str, Any], dict[str, str], int, str]] = [
    ("symlink", {"archive": with_content(Member("wp-content/x", "symlink", target="/etc"))},
     {}, 422, "is a link"),
    ("hard link", {"archive": with_content(
        Member("wp-content/h", "hardlink", target="wp-content/themes/crumbs/style.css"))},
     {}, 422, "is a link"),
    ("absolute path", {"archive": with_content(Member("/etc/cron.d/x", data=b"x"))},
     {}, 422, "absolute path"),
    ("dot dot", {"archive": with_content(Member("wp-content/../../x.php", data=b"x"))},
     {}, 422, "'..'"),
    ("device", {"archive": with_content(Member("wp-content/null", "char"))},
     {}, 422, "device or special"),
    ("fifo", {"archive": with_content(Member("wp-content/pipe", "fifo"))},
     {}, 422, "device or special"),
    ("setuid", {"archive": with_content(Member("wp-content/bin", data=b"x", mode=SETUID))},
     {}, 422, "set-uid"),
    ("php in uploads", {"archive": with_content(Member("wp-content/uploads/s.php", data=b"x"))},
     {}, 422, "PHP file under wp-content/uploads"),
    ("PHTML in uploads", {"archive": with_content(
        Member("wp-content/uploads/2024/S.PHTML", data=b"x"))}, {}, 422, "PHP file"),
    ("php5 in uploads", {"archive": with_content(Member("wp-content/uploads/a.php5"))},
     {}, 422, "PHP file"),
    ("double extension", {"archive": with_content(Member("wp-content/uploads/a.php.jpg"))},
     {}, 422, "PHP file"),
    ("phar in uploads", {"archive": with_content(Member("wp-content/uploads/a.phar"))},
     {}, 422, "PHP file"),
    ("outside wp-content", {"archive": with_content(Member("index.php", data=b"x"))},
     {}, 422, "outside wp-content"),
    ("no dump", {"archive": lambda: tar_gz([Member("wp-content/a.txt")])},
     {}, 422, "no database.sql"),
    ("no wp-content", {"archive": lambda: tar_gz([Member("database.sql", data=DUMP.encode())])},
     {}, 422, "no wp-content/"),
    ("not gzip", {"archive": lambda: b"PK\x03\x04 a zip"}, {}, 422, "not a .tar.gz"),
    ("gzip bomb", {"archive": lambda: bomb(2 * MAX_UNPACKED)}, {}, 422, "unpacks to more than"),
    ("dump bomb", {"dump": lambda: gzip.compress(DUMP.encode() + bytes(2 * MAX_UNPACKED))},
     {}, 422, "unpacks to more than"),
    ("not wordpress", {"dump": lambda: NOT_WORDPRESS.encode()}, {}, 422, "not of a WordPress"),
    ("two sites", {"dump": lambda: TWO_SITES.encode()}, {}, 422, "more than one WordPress"),
    ("switches database", {"dump": lambda: SWITCHES.encode()}, {}, 422, "switches database"),
    ("content php", {"dump": lambda: DUMP.encode(), "content": lambda: tar_gz(
        [Member("wp-content/uploads/x.php")])}, {}, 422, "PHP file"),
    ("too large", {"archive": lambda: bytes(MAX_BYTES + 1)}, {}, 413, "AIPRESS_IMPORT_MAX_BYTES"),
    ("no old url", {"archive": good_archive}, {"old_url": ""}, 422, "old_url must be"),
    ("old url not a url", {"archive": good_archive}, {"old_url": "old-shop"}, 422, "old_url"),
    ("bad admin", {"archive": good_archive}, {"admin": "root"}, 422, "admin must be keep or reset"),
    ("archive and dump", {"archive": good_archive, "dump": lambda: DUMP.encode()},
     {}, 422, "not both"),
    ("content alone", {"content": lambda: tar_gz(CONTENT_ONLY)}, {}, 422, "send dump too"),
    ("no file (not multipart)", {}, {}, 422, "multipart/form-data"),
    ("unknown field", {"archive": good_archive}, {"extra": "1"}, 422, "unknown form field"),
]  # fmt: skip
CONTENT_ONLY = [Member("wp-content/a.txt")]


@pytest.mark.parametrize(
    ("files", "fields", "status", "says"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_a_bad_upload_is_refused_and_leaves_nothing(
    client: TestClient,
    owner: dict[str, str],
    memory_provider: MemoryProvider,
    settings: Settings,
    files: dict[str, Any],
    fields: dict[str, str],
    status: int,
    says: str,
) -> None:
    site_id = _site_id(client, owner)
    before = memory_provider.content(site_id)
    ops_before = client.get("/v1/tenants/acme/operations", headers=owner).json()
    answer = _post(client, owner, {name: make() for name, make in files.items()}, **fields)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"], answer.json()
    assert _leftovers(settings) == []
    assert client.get("/v1/tenants/acme/operations", headers=owner).json() == ops_before
    assert memory_provider.content(site_id) == before
    assert memory_provider.content(site_id, "staged") == {}
    assert not any(c.startswith("stage_import") for c in memory_provider.calls)
    site = client.get(f"{SITES}/crumbs", headers=owner).json()
    assert site["status"] == "ready" and site["current_operation_id"] is None


def _multipart(boundary: str, parts: list[tuple[str, bytes, bool]]) -> bytes:
    out = b""
    for name, body, is_file in parts:
        filename = f'; filename="{name}.bin"' if is_file else ""
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'
            ).encode()
            + body
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def test_a_streamed_upload_without_length_stops_at_the_limit(
    client: TestClient, owner: dict[str, str], settings: Settings
) -> None:
    body = _multipart("b0undary", [("old_url", OLD_URL.encode(), False),
                                   ("archive", bytes(MAX_BYTES + 10), True)])  # fmt: skip

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    headers = {**owner, "Content-Type": "multipart/form-data; boundary=b0undary"}
    answer = client.post(f"{SITES}/crumbs/import", content=chunks(), headers=headers)
    assert answer.status_code == 413, answer.text
    assert "AIPRESS_IMPORT_MAX_BYTES" in answer.json()["detail"]
    assert _leftovers(settings) == []


def test_a_form_without_the_site_is_refused(
    client: TestClient, owner: dict[str, str], settings: Settings
) -> None:
    body = _multipart("b0undary", [("old_url", OLD_URL.encode(), False)])
    headers = {**owner, "Content-Type": "multipart/form-data; boundary=b0undary"}
    answer = client.post(f"{SITES}/crumbs/import", content=body, headers=headers)
    assert answer.status_code == 422 and "send the site" in answer.json()["detail"]
    assert _leftovers(settings) == []


def test_not_multipart_is_refused(client: TestClient, owner: dict[str, str]) -> None:
    answer = client.post(f"{SITES}/crumbs/import", json={"old_url": OLD_URL}, headers=owner)
    assert answer.status_code == 422 and "multipart/form-data" in answer.json()["detail"]


def test_who_may_import(client: TestClient, owner: dict[str, str], auth: AuthHeaders) -> None:
    viewer = _post(client, auth("viewer", "acme"), {"archive": good_archive()})
    assert viewer.status_code == 403, viewer.text
    other = _post(client, auth("tenant", "globex"), {"archive": good_archive()})
    assert other.status_code == 404, other.text
    stopped = client.post(f"{SITES}/crumbs/stop", headers=owner)
    assert wait_for_operation(client, stopped.json()["operation"]["id"], owner)["status"] == (
        "succeeded"
    )
    refused = _post(client, owner, {"archive": good_archive()})
    assert refused.status_code == 409 and "needs it to be ready" in refused.json()["detail"]


def test_what_only_the_check_step_finds_rolls_the_import_back(
    tmp_path: Path, settings: Settings, memory_provider: MemoryProvider,
    client: TestClient, owner: dict[str, str],
) -> None:  # fmt: skip
    """An upload recorded without the request's checks (as a crashed request could leave
    one): the operation's first step refuses it before any backup or change."""
    site_id = _site_id(client, owner)
    before = memory_provider.content(site_id)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "archive.tar.gz").write_bytes(
        with_content(Member("wp-content/uploads/x.php", data=b"<?php"))()
    )
    platform = build_platform(settings, provider=memory_provider)
    try:
        who = Principal("tenant-user", Role.TENANT, tenants=frozenset({"acme"}))
        with platform.sessions() as session:
            _site, pre, op = start_import(
                session, principal=who, settings=settings, tenant_id="acme", site="crumbs",
                incoming=incoming, old_url=OLD_URL, admin="keep",
            )  # fmt: skip
            op_id, pre_id = op.id, pre.id
        platform.engine.submit(op_id)
        final = wait_for_operation(client, op_id, owner)
    finally:
        platform.close()
    assert final["status"] == "rolled_back", final
    assert "PHP file under wp-content/uploads" in (final["error"] or ""), final
    assert _leftovers(settings) == [] and not incoming.exists()
    assert memory_provider.content(site_id) == before
    # Refused before its pre-import backup was taken: the only backup call is none at all.
    assert not any(c.startswith(("backup:backup", "stage_import")) for c in memory_provider.calls)
    pre_row = client.get(f"{SITES}/crumbs/backups/{pre_id}", headers=owner).json()
    assert pre_row["status"] == "failed"
    assert client.get(f"{SITES}/crumbs", headers=owner).json()["status"] == "ready"


def test_the_cli_uploads_and_follows_the_import(
    tmp_path: Path, settings: Settings, memory_provider: MemoryProvider, issuer: LocalTokenIssuer
) -> None:
    archive = tmp_path / "site.tar.gz"
    archive.write_bytes(good_archive())
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(with_content(Member("wp-content/uploads/x.php"))())
    with served_cli(settings, memory_provider, issuer) as served:
        site_id = served.site_id

        def cli(*args: str, stdin: str | None = None) -> Result:
            return served("sites", "import", "globex", "shop", *args, stdin=stdin)

        before = memory_provider.content(site_id)
        both = cli("--archive", str(archive), "--dump", str(archive), "--old-url", OLD_URL)
        assert both.exit_code == 2 and "Give --archive, or --dump" in both.output
        refused = cli("--archive", str(archive), "--old-url", OLD_URL, stdin="n\n")
        assert refused.exit_code == 1 and "Replace the database and files of shop" in (
            refused.output
        )
        rejected = cli("--archive", str(bad), "--old-url", OLD_URL, "--yes")
        assert rejected.exit_code == 1 and "Error 422" in rejected.output
        assert "PHP file" in rejected.output
        assert memory_provider.content(site_id) == before
        done = cli("--archive", str(archive), "--old-url", OLD_URL, "--admin", "reset", "--yes")
        assert done.exit_code == 0, done.output
        assert "imported; the site as it was is kept as backup" in done.output
        assert TITLE in memory_provider.content(site_id)["database"]


def test_a_small_upload_may_not_unpack_to_gigabytes(
    client: TestClient, owner: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unpack limit shrinks with the upload: a tiny archive of zeros stops at 50x itself."""
    from controlplane.imports import checks

    monkeypatch.setattr(checks, "UNPACK_FLOOR", 64 * 1024)
    archive = bomb(MAX_UNPACKED // 2)  # within the absolute limit, ~1000x its own size
    assert checks.UNPACK_RATIO * len(archive) < MAX_UNPACKED // 2
    answer = _post(client, owner, {"archive": archive})
    assert answer.status_code == 422 and "unpacks to more than" in answer.json()["detail"]
    assert _leftovers(settings) == []


def test_one_upload_at_a_time_per_tenant_and_only_with_room_on_disk(
    client: TestClient, owner: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controlplane.imports import uploads

    with uploads.tenant_slot(settings.home, "acme"):  # another request of acme's is checking
        busy = _post(client, owner, {"archive": good_archive()})
    assert busy.status_code == 429 and "another import of tenant acme" in busy.json()["detail"]
    full = type("Usage", (), {"free": 100 << 20})()
    monkeypatch.setattr(uploads.shutil, "disk_usage", lambda _path: full)
    short = _post(client, owner, {"archive": good_archive()})
    assert short.status_code == 429 and "MiB of disk free" in short.json()["detail"], short.text
    assert _leftovers(settings) == []
    monkeypatch.undo()
    assert _post(client, owner, {"archive": good_archive()}).status_code == 202
