"""The agent's staging tools against the control plane (memory provider): clone_site and
get_drift run at once; promote_site's confirmation names the scope and production's drift
in words, and a promotion that would overwrite production's changes is refused before
anything is asked; rollback_site confirms naming the promotion's time; import_site's card
asks for a file the widget uploads, and the model learns only the operation. The offline
planner reaches each of them from plain English."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from chatbot.conversation import UploadRefused
from controlplane.kernel import clock
from controlplane.providers.memory import MemoryProvider
from tests.agent.acme_api import SITES, operations_of, scripted_chat, site_id_of, wait_succeeded
from tests.agent_fixtures import ChatFactory, EngineFactory, make_site
from tests.import_fixtures import DUMP
from tools.staging import _drift_words, scope_in_words, table_words, tables_in_words

MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
TUESDAY_9 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PAGES = ["wp_posts", "wp_postmeta"]


def _drift(*tables: tuple[str, bool, str | None], files: int = 0) -> dict[str, Any]:
    """A drift body of the contract's shape."""
    summary = [s for _, changed, s in tables if changed and s]
    if files:
        summary.append(f"{files} files changed in uploads")
    return {
        "site": "shop-staging", "parent": "shop", "since": MONDAY_10.isoformat(),
        "changed": bool(summary),
        "tables": [{"table": t, "rows_then": 1, "rows_now": 2 if c else 1, "changed": c,
                    "summary": s} for t, c, s in tables],
        "files": {"added": [], "changed": [f"uploads/{i}.jpg" for i in range(files)],
                  "removed": []},
        "summary": summary,
    }  # fmt: skip


def test_the_words_of_tables_scopes_and_drift() -> None:
    assert [table_words(t) for t in ("wp_posts", "shop_postmeta", "wp_commentmeta",
                                     "wp_wc_orders", "wp_options", "wp_custom")] == [
        "posts and pages", "posts and pages", "comments", "orders", "settings", "wp_custom"]  # fmt: skip
    assert tables_in_words(PAGES) == "posts and pages (wp_posts, wp_postmeta)"
    assert tables_in_words(["wp_posts", "wp_comments"]) == (
        "posts and pages (wp_posts) and comments (wp_comments)"
    )
    assert scope_in_words("database", PAGES) == (
        "copies posts and pages (wp_posts, wp_postmeta) from staging to production"
    )
    assert scope_in_words("files", None).startswith("copies wp-content")
    assert scope_in_words("all", None) == (
        "copies the whole database and wp-content from staging to production"
    )
    drift = _drift(("wp_posts", False, None), ("wp_comments", True, "3 new comments"),
                   ("wp_commentmeta", True, None), files=2)  # fmt: skip
    words, overwritten = _drift_words(drift, "database", PAGES)
    assert words == ("production changed since the clone: 3 new comments (not copied); "
                     "2 files changed in uploads (not copied)")  # fmt: skip
    assert overwritten == []
    words, overwritten = _drift_words(drift, "all", None)
    assert overwritten == ["3 new comments (wp_comments, wp_commentmeta)",
                           "2 files changed in uploads"]  # fmt: skip
    assert _drift_words(_drift(("wp_posts", False, None)), "all", None) == (
        "production has not changed since the clone", [])  # fmt: skip


# -- against the control plane ---------------------------------------------------------------


def _shop_with_staging(api: httpx.Client, memory: MemoryProvider) -> tuple[str, str]:
    """Production shop (pages, no comments) cloned to shop-staging on Monday at 10:00; the
    ids of both."""
    make_site(api, "acme", "shop")
    shop = site_id_of(api, "shop")
    memory.write_content(shop, "table:wp_posts", "home\nabout")
    memory.write_content(shop, "table:wp_postmeta", "home:layout")
    memory.write_content(shop, "table:wp_comments", "")
    with clock.travel(MONDAY_10):
        wait_succeeded(api, api.post(f"{SITES}/shop/clone", json={"name": "shop-staging"}))
    return shop, site_id_of(api, "shop-staging")


def test_clone_then_drift_tell_the_model_sentences_and_counts_never_file_contents(
    engine_factory: EngineFactory,
    chat: ChatFactory,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    make_site(admin_api, "acme", "shop")
    shop = site_id_of(admin_api, "shop")
    memory_provider.write_content(shop, "table:wp_comments", "")
    memory_provider.write_content(shop, "files", "logo-v1")
    alice = scripted_chat(engine_factory, chat,
                      ("clone_site", {"site": "shop", "name": "shop-staging"}),
                      ("get_drift", {}), ("get_drift", {"site": "shop"}))  # fmt: skip
    cloned = alice.say("clone shop to shop-staging")
    assert cloned.interrupt is None  # production is not touched: no confirmation
    (result,) = cloned.executed
    assert result["status"] == "ok", result
    data = result["data"]
    assert (data["name"], data["role"], data["parent"], data["status"]) == (
        "shop-staging", "staging", "shop", "ready")  # fmt: skip
    assert {e.get("step") for e in cloned.events if e["type"] == "progress"}  # relayed
    staging = admin_api.get(f"{SITES}/shop-staging").json()
    assert (staging["role"], staging["parent"]) == ("staging", "shop")

    memory_provider.write_content(shop, "table:wp_comments", "great\nlovely\nmeh")
    memory_provider.write_content(shop, "files", "logo-v2 with a SECRET-LOOKING body")
    for asked in (alice.say("what changed on production?"), alice.say("and on shop?")):
        (drift,) = asked.executed
        assert drift["status"] == "ok", drift
        told = drift["data"]
        assert told["site"] == "shop-staging" and told["production"] == "shop"
        assert told["changed"] is True
        assert "3 new comments" in told["summary"]
        assert [t["table"] for t in told["tables_changed"]] == ["wp_comments"]
        assert told["files_changed"] == {"added": 0, "changed": 1, "removed": 0}
        assert "SECRET-LOOKING" not in json.dumps(told) and "content.txt" not in json.dumps(told)


def test_promote_names_scope_and_drift_refuses_overwriting_then_promotes_pages_and_rolls_back(
    engine_factory: EngineFactory,
    chat: ChatFactory,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    shop, staging = _shop_with_staging(admin_api, memory_provider)
    memory_provider.write_content(staging, "table:wp_posts", "home (new design)\nabout")
    memory_provider.write_content(shop, "table:wp_comments", "one\ntwo\nthree")
    everything = ("promote_site", {})
    pages = ("promote_site", {"scope": "database", "tables": PAGES})
    rollback = ("rollback_site", {})
    with clock.travel(TUESDAY_9):
        alice = scripted_chat(engine_factory, chat, everything, pages, rollback)
        refused = alice.say("push staging live")
        assert refused.interrupt is None and refused.executed == []  # never asked
        assert ("production site shop changed since the clone where this promotion would "
                "write: 3 new comments (wp_comments)") in refused.reply  # fmt: skip
        assert operations_of(admin_api, "promote_site") == []

        asked = alice.say("only the pages then")
        assert asked.interrupt is not None and asked.executed == []
        (action,) = asked.interrupt["actions"]
        assert action["question"] == (
            "Promote staging site shop-staging to production site shop of tenant acme? It "
            "copies posts and pages (wp_posts, wp_postmeta) from staging to production; "
            "production changed since the clone: 3 new comments (not copied). A backup of "
            "shop is taken first (rollback_site puts it back), and production switches over "
            "at once."
        )
        done = alice.resume(True)
        (result,) = done.executed
        assert result["status"] == "ok", result
        live = memory_provider.content(shop)
        assert live["table:wp_posts"] == "home (new design)\nabout"  # staging's page
        assert live["table:wp_comments"] == "one\ntwo\nthree"  # production's comments kept
        kinds = {b["id"]: b["kind"] for b in admin_api.get(f"{SITES}/shop/backups").json()}
        assert kinds[result["data"]["pre_promote_backup"]] == "pre-promote"

        asked = alice.say("roll back the promotion")
        (action,) = asked.interrupt["actions"] if asked.interrupt else [None]
        assert action is not None and action["site"] == "shop"
        assert action["backup_time"] == "Tuesday 1 December 2026 at 09:00 UTC (just now)"
        rolled = alice.resume(True)
    (result,) = rolled.executed
    assert result["status"] == "ok", result
    assert memory_provider.content(shop)["table:wp_posts"] == "home\nabout"


def test_a_viewer_is_refused_promote_rollback_and_import_without_being_asked(
    engine_factory: EngineFactory,
    chat: ChatFactory,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    _shop_with_staging(admin_api, memory_provider)
    vera = scripted_chat(engine_factory, chat, ("promote_site", {}), ("rollback_site", {"site": "shop"}),
                     ("import_site", {"site": "shop", "old_url": "https://old.example.com"}),
                     ("clone_site", {"site": "shop", "name": "shop-two"}), ("get_drift", {}),
                     role="viewer", sub="vera")  # fmt: skip
    for text, what in (("promote", "promote staging site shop-staging"),
                       ("roll back", "roll back site shop"), ("import", "import into site shop")):  # fmt: skip
        turn = vera.say(text)
        assert turn.interrupt is None and turn.executed == []
        assert f"does not allow your role (viewer) to {what} while it is ready" in turn.reply
    cloned = vera.say("clone shop")
    assert [r["status"] for r in cloned.executed] == ["error"]
    assert admin_api.get(f"{SITES}/shop-two").status_code == 404
    assert vera.say("drift?").executed[0]["status"] == "ok"  # reading is allowed


def _upload(
    api: httpx.Client, token: str, action: dict[str, Any], files: dict[str, Any]
) -> httpx.Response:
    """What the widget does with the card: a multipart POST to its upload path, with the
    user's own token."""
    return httpx.post(f"{api.base_url}{action['upload']['path']}", data=action["upload"]["fields"],
                      files=files, headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip


def test_import_asks_for_a_file_the_widget_uploads_and_the_model_learns_only_the_operation(
    engine_factory: EngineFactory,
    chat: ChatFactory,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    make_site(admin_api, "acme", "crumbs")
    call = ("import_site", {"site": "crumbs", "old_url": "https://old.example.com"})
    alice = scripted_chat(engine_factory, chat, call, call)
    asked = alice.say("import my old site into crumbs")
    (action,) = asked.interrupt["actions"] if asked.interrupt else [None]
    assert action is not None and action["input"] == "file"
    assert action["upload"] == {"path": f"{SITES}/crumbs/import",
                                "fields": {"old_url": "https://old.example.com", "admin": "keep"}}  # fmt: skip
    assert "rewritten from https://old.example.com" in action["question"]
    not_sent = alice.resume(True)  # confirmed, but nothing was uploaded
    assert [(r["status"], r["error"]) for r in not_sent.executed] == []
    assert "no file was uploaded" in not_sent.reply
    assert operations_of(admin_api, "import_site") == []

    asked = alice.say("import it after all")
    (action,) = asked.interrupt["actions"] if asked.interrupt else [None]
    assert action is not None
    backup = wait_succeeded(admin_api, admin_api.post(f"{SITES}/crumbs/backups"))["operation"]["id"]
    with pytest.raises(UploadRefused, match=f"operation {backup} is not an import into crumbs"):
        alice.resume(True, uploads={action["tool_call_id"]: backup})
    dump = (DUMP + "-- MARKER-OF-THE-FILE\n").encode()
    accepted = _upload(
        admin_api, alice.token, action, {"dump": ("old.sql", dump, "application/sql")}
    )
    assert accepted.status_code == 202, accepted.text
    operation = accepted.json()["operation"]["id"]
    done = alice.resume(True, uploads={action["tool_call_id"]: operation})
    (result,) = done.executed
    assert result["status"] == "ok", result
    assert result["data"]["operation"]["id"] == operation
    assert result["data"]["operation"]["kind"] == "import_site"
    assert "MARKER-OF-THE-FILE" not in json.dumps([e for e in done.events])
    assert "old.sql" not in json.dumps([e for e in done.events])


# -- the offline planner --------------------------------------------------------------------


def test_the_offline_planner_clones_reads_drift_promotes_pages_and_rolls_back(
    chat: ChatFactory, admin_api: httpx.Client, memory_provider: MemoryProvider
) -> None:
    make_site(admin_api, "acme", "shop")
    shop = site_id_of(admin_api, "shop")
    memory_provider.write_content(shop, "table:wp_posts", "home")
    memory_provider.write_content(shop, "table:wp_postmeta", "home:layout")
    memory_provider.write_content(shop, "table:wp_comments", "")
    alice = chat("tenant", "acme", sub="alice", email="alice@acme.example")
    cloned = alice.say("clone shop to shop-staging")
    assert [c["args"] for c in cloned.proposed] == [{"site": "shop", "name": "shop-staging"}]
    assert "Cloned **shop** to the staging site **shop-staging**" in cloned.reply
    staging = site_id_of(admin_api, "shop-staging")

    memory_provider.write_content(shop, "table:wp_comments", "first!")
    memory_provider.write_content(staging, "table:wp_posts", "home, redesigned")
    drift = alice.say("what changed on production since I cloned staging?")
    assert [c["name"] for c in drift.proposed] == ["get_drift"]
    assert "- 1 new comment" in drift.reply

    asked = alice.say("push staging live, only pages")
    (read, promote) = asked.proposed
    assert (read["name"], read["args"]) == ("get_drift", {})
    assert promote["name"] == "promote_site"
    assert sorted(promote["args"].pop("tables")) == sorted(PAGES)
    assert promote["args"] == {"site": "shop-staging", "scope": "database"}
    assert asked.interrupt is not None
    assert "1 new comment (not copied)" in asked.interrupt["actions"][0]["question"]
    done = alice.resume(True)
    assert "Promoted **shop-staging** to **shop**" in done.reply
    assert memory_provider.content(shop)["table:wp_posts"] == "home, redesigned"
    assert memory_provider.content(shop)["table:wp_comments"] == "first!"

    asked = alice.say("roll back the promotion")
    assert [c["name"] for c in asked.proposed] == ["rollback_site"]
    assert asked.interrupt is not None
    done = alice.resume(True)
    assert "Rolled back **shop** to its pre-promote backup" in done.reply
    assert memory_provider.content(shop)["table:wp_posts"] == "home"


def test_the_offline_planner_asks_what_an_import_needs_then_shows_the_card(
    chat: ChatFactory, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    alice = chat("tenant", "acme", sub="alice", email="alice@acme.example")
    which = alice.say("import my site")
    assert which.proposed == [] and "Which of your sites should the import go into?" in which.reply
    address = alice.say("crumbs")
    assert address.proposed == [] and "What was the site's old address" in address.reply
    card = alice.say("https://old.example.com/blog")
    assert [(c["name"], c["args"]) for c in card.proposed] == [
        ("import_site", {"site": "crumbs", "old_url": "https://old.example.com/blog",
                         "admin": "keep"})]  # fmt: skip
    assert card.interrupt is not None and card.interrupt["actions"][0]["input"] == "file"
    cancelled = alice.resume(False)
    assert "Cancelled" in cancelled.reply and operations_of(admin_api, "import_site") == []
