"""Backups through the control plane on the real local stack (MariaDB, PHP-FPM, nginx,
WordPress): back up, break the site (a dropped table, a deleted upload, a fatal plugin),
restore in place; the undelete: a deleted site made again from its backup under a new
name, its address rewritten; and a trial restore beside the site (verify_backup)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.backups.rounds import SCHEDULER
from controlplane.models import Backup, Operation, OperationEvent
from controlplane.services.backups import start_verify
from tests.conftest import wait_for_operation
from tests.integration.test_local_backups import _host, _php, _write_as_site
from tests.integration.test_local_sites import SITES, LocalEnv, local_env_fixture

pytestmark = pytest.mark.integration
POST = "A post that must come back"
UPLOAD = "uploads/2026/12/cake.txt"


local = local_env_fixture("rs")


def _post_titles(local: LocalEnv, name: str) -> list[str]:
    out = _php(local, name, "foreach (get_posts(['numberposts' => -1]) as $p) "
                            "echo $p->post_title, \"\\n\";")  # fmt: skip
    return out.splitlines()


def test_restore_in_place_brings_back_post_upload_and_a_working_homepage(
    local: LocalEnv,
) -> None:
    site = local.create("bakery", title="Bakery Restored")
    _php(
        local, "bakery", f"wp_insert_post(['post_title' => '{POST}', 'post_status' => 'publish']);"
    )
    upload = _write_as_site(local, "bakery", UPLOAD, b"a cake")
    taken = local.run(local.client.post(f"{SITES}/bakery/backups", headers=local.admin))

    # Break it three ways.
    _php(local, "bakery", 'global $wpdb; $wpdb->query("DROP TABLE {$wpdb->posts}");')
    upload.unlink()
    _write_as_site(local, "bakery", "mu-plugins/broken.php", b"<?php this is not php;")
    # (past the page cache, which still has the homepage as it was)
    assert local.site_get(_host("bakery"), "/wp-login.php").status_code == 500

    path = f"{SITES}/bakery/backups/{taken['backup']['id']}/restore"
    restored = local.run(local.client.post(path, headers=local.admin))

    home = local.site_get(_host("bakery"))
    assert home.status_code == 200 and "Bakery Restored" in home.text
    assert local.site_get(_host("bakery"), "/wp-login.php").status_code == 200
    assert POST in _post_titles(local, "bakery")
    assert upload.read_bytes() == b"a cake"
    pre = local.client.get(
        f"{SITES}/bakery/backups/{restored['pre_restore_backup']['id']}", headers=local.admin
    ).json()
    assert pre["kind"] == "pre-restore" and pre["status"] == "succeeded", pre
    assert local.client.get(f"{SITES}/bakery", headers=local.admin).json()["status"] == "ready"
    assert site["preview_url"]


def test_undelete_under_a_new_name_rewrites_the_address(local: LocalEnv) -> None:
    old = local.create("shop", title="Corner Shop")
    _php(local, "shop", f"wp_insert_post(['post_title' => '{POST}', 'post_status' => 'publish', "
                        f"'post_content' => 'see {old['preview_url']}about/']);")  # fmt: skip
    final = local.delete("shop")
    assert final["status"] == "succeeded", final
    kept = local.client.get("/v1/tenants/acme/backups?deleted=true", headers=local.admin).json()
    assert final["backup"] in [b["id"] for b in kept]

    body = {"name": "shop-again", "admin_email": "owner@example.com",
            "from_backup": {"site": "shop", "backup": final["backup"]}}  # fmt: skip
    made = local.run(local.client.post(SITES, json=body, headers=local.admin))

    # What the rewrite changed is on the operation: counts per table and column (the post,
    # home and siteurl at least), and one sentence in the restore step's "done" event.
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        op = session.get(Operation, made["operation"]["id"])
        rewrite = op.params["rewrite"]
        done = [e.message for e in op_events(session, op.id) if e.step == "restore"
                and e.type == "step_finished"]  # fmt: skip
    assert rewrite["tables"]["wp_posts"]["post_content"] >= 1
    assert rewrite["tables"]["wp_options"]["option_value"] >= 2
    assert rewrite["cells"] == sum(n for cols in rewrite["tables"].values() for n in cols.values())
    assert len(done) == 1 and re.fullmatch(
        rf"restore done in [0-9.]+ s: rewrote {rewrite['cells']} values in "
        rf"{len(rewrite['tables'])} tables", done[0]), done  # fmt: skip

    new = local.client.get(f"{SITES}/shop-again", headers=local.admin).json()
    home = local.site_get(_host("shop-again"))
    assert home.status_code == 200 and "Corner Shop" in home.text
    content = _php(local, "shop-again", "foreach (get_posts() as $p) echo $p->post_content;")
    assert f"see {new['preview_url']}about/" in content
    assert old["preview_url"] not in content


def op_events(session: Session, operation_id: str) -> list[OperationEvent]:
    """The operation's events, in order."""
    query = select(OperationEvent).where(OperationEvent.operation_id == operation_id)
    return list(session.scalars(query.order_by(OperationEvent.id)))


def _verify(local: LocalEnv, name: str, backup_id: str) -> dict[str, Any]:
    """A trial restore of the backup beside the site, as the backup round starts one."""
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        _backup, op = start_verify(
            session, principal=SCHEDULER, tenant_id="acme", site=name, backup_id=backup_id
        )
        op_id = op.id
    platform.engine.submit(op_id)
    return wait_for_operation(local.client, op_id, local.admin, timeout=300)


def test_a_trial_restore_checks_a_backup_beside_the_site_and_leaves_it_as_it_is(
    local: LocalEnv,
) -> None:
    local.create("deli", title="Deli Checked")
    taken = local.run(local.client.post(f"{SITES}/deli/backups", headers=local.admin))
    backup_id = taken["backup"]["id"]
    later = "A post written after the backup"
    _php(local, "deli", f"wp_insert_post(['post_title' => '{later}', 'post_status' => 'publish']);")

    good = _verify(local, "deli", backup_id)

    assert good["status"] == "succeeded", good
    row = local.client.get(f"{SITES}/deli/backups/{backup_id}", headers=local.admin).json()
    assert row["sample_checked_at"] and row["verification_error"] is None, row
    assert row["verified_at"] == row["sample_checked_at"], row
    assert later in _post_titles(local, "deli")  # the live site was never replaced
    home = local.site_get(_host("deli"))
    assert home.status_code == 200 and "Deli Checked" in home.text

    # A record that no longer matches what storage holds (as a corrupted dump would not).
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        backup = session.get(Backup, backup_id)
        assert backup is not None
        backup.checksums = {**backup.checksums, "database": "0" * 64}
        session.commit()
    bad = _verify(local, "deli", backup_id)

    assert bad["status"] == "rolled_back", bad
    row = local.client.get(f"{SITES}/deli/backups/{backup_id}", headers=local.admin).json()
    assert row["verification_error"], row
    assert later in _post_titles(local, "deli")
    home = local.site_get(_host("deli"))
    assert home.status_code == 200 and "Deli Checked" in home.text
    assert local.client.get(f"{SITES}/deli", headers=local.admin).json()["status"] == "ready"
