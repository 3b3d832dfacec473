"""Staging on the real local stack (MariaDB, PHP-FPM, nginx, WordPress): clone a site behind
an HTTP login, edit the copy, see production's drift in words, be refused a promotion that
would overwrite it, promote only the pages' tables, roll the promotion back."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.test_local_backups import _host, _php
from tests.integration.test_local_sites import SITES, LocalEnv, local_env_fixture

pytestmark = pytest.mark.integration
ORIGINAL = "Our original story"
EDITED = "Our story, rewritten on staging"
COMMENT = "A visitor's comment on production"


local = local_env_fixture("st")


def _page(local: LocalEnv, name: str) -> str:
    return _php(local, name, "$p = get_page_by_path('about'); echo $p->post_content;")


def test_clone_edit_drift_scoped_promote_and_rollback(local: LocalEnv) -> None:
    prod = local.create("bakery", title="Bakery Live")
    prod_url = prod["preview_url"]
    _php(local, "bakery", "wp_insert_post(['post_type' => 'page', 'post_name' => 'about', "
                          "'post_title' => 'About', 'post_status' => 'publish', "
                          f"'post_content' => '{ORIGINAL}: see {prod_url}menu/']);")  # fmt: skip

    cloned = local.run(local.client.post(
        f"{SITES}/bakery/clone", json={"name": "bakery-dev", "basic_auth": True},
        headers=local.admin,
    ), timeout=600)  # fmt: skip
    assert cloned["site"]["role"] == "staging" and cloned["site"]["parent"] == "bakery"
    staging = local.client.get(f"{SITES}/bakery-dev", headers=local.admin).json()
    assert staging["status"] == "ready" and staging["parent"] == "bakery"

    # Behind its HTTP login, and asking search engines to stay away.
    assert local.site_get(_host("bakery-dev")).status_code == 401
    login = local.client.post(f"{SITES}/bakery-dev/basic-auth/reveal", headers=local.admin).json()
    auth = httpx.BasicAuth(login["username"], login["password"]).auth_flow
    header = next(auth(httpx.Request("GET", "http://x/"))).headers["Authorization"]
    home = local.site_get(_host("bakery-dev"), headers={"Authorization": header})
    about = local.site_get(_host("bakery-dev"), "/about/", headers={"Authorization": header})
    assert home.status_code == 200 and "Bakery Live" in home.text
    assert about.status_code == 200 and ORIGINAL in about.text
    for html in (home.text, about.text):
        assert _host("bakery") + ":" not in html and not re.search(r"//bakery\.acme\.", html)
    assert _php(local, "bakery-dev", "echo get_option('blog_public');") == "0"
    assert _php(local, "bakery", "echo get_option('blog_public');") == "1"
    assert f"{staging['preview_url']}menu/" in _page(local, "bakery-dev")

    # The page edited on staging; a visitor's comment (held for moderation) on production.
    _php(local, "bakery-dev", "$p = get_page_by_path('about'); wp_update_post(['ID' => $p->ID, "
                              f"'post_content' => '{EDITED}: see {staging['preview_url']}menu/']);")  # fmt: skip
    _php(local, "bakery", "wp_insert_comment(['comment_post_ID' => 1, 'comment_author' => 'Ann', "
                          f"'comment_content' => \"{COMMENT}\", 'comment_approved' => 0]);")  # fmt: skip

    drift = local.client.get(f"{SITES}/bakery-dev/drift", headers=local.admin).json()
    assert drift["changed"] and "1 new comment" in drift["summary"], drift

    refused = local.client.post(
        f"{SITES}/bakery-dev/promote", json={"scope": "all"}, headers=local.admin
    )
    assert refused.status_code == 409, refused.text
    assert "wp_comments" in refused.json()["detail"]
    assert "1 new comment" in refused.json()["drift"]["summary"]
    assert ORIGINAL in _page(local, "bakery")

    promoted = local.run(local.client.post(
        f"{SITES}/bakery-dev/promote",
        json={"scope": "database", "tables": ["wp_posts", "wp_postmeta"]}, headers=local.admin,
    ), timeout=600)  # fmt: skip
    assert promoted["pre_promote_backup"]["kind"] == "pre-promote"
    page = _page(local, "bakery")
    assert page == f"{EDITED}: see {prod_url}menu/", page  # staging's URL rewritten back
    served = local.site_get(_host("bakery"), "/about/")
    assert served.status_code == 200 and EDITED in served.text
    assert "bakery-dev" not in served.text
    comments = _php(local, "bakery", "foreach (get_comments(['status' => 'all']) as $c) "
                                     "echo $c->comment_content, \"\\n\";")  # fmt: skip
    assert COMMENT in comments  # wp_comments was out of scope: kept
    assert _php(local, "bakery", "echo get_option('blog_public');") == "1"
    home = local.site_get(_host("bakery"))
    assert home.status_code == 200 and "Bakery Live" in home.text
    after = local.client.get(f"{SITES}/bakery-dev/drift", headers=local.admin).json()
    assert not any(t["changed"] for t in after["tables"] if t["table"] == "wp_posts"), after

    local.run(local.client.post(f"{SITES}/bakery/rollback", headers=local.admin), timeout=600)
    assert ORIGINAL in _page(local, "bakery")
    served = local.site_get(_host("bakery"), "/about/")
    assert served.status_code == 200 and ORIGINAL in served.text

    # A production site with a staging copy is not deleted from under it.
    refused_delete = local.client.delete(f"{SITES}/bakery", headers=local.admin)
    assert refused_delete.status_code == 409 and "bakery-dev" in refused_delete.json()["detail"]
    assert local.delete("bakery-dev")["status"] == "succeeded"
    assert local.delete("bakery")["status"] == "succeeded"
