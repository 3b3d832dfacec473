"""The agent's backup tools against the control plane (memory provider): backup_site and
list_backups run at once, restore_site and undelete_site wait for a confirmation that names
the backup's time in words, a viewer is never asked, and undelete by name brings back the
newest deletion of that name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from controlplane.kernel import clock
from controlplane.providers.memory import MemoryProvider
from tests.agent.acme_api import SITES, operations_of, scripted_chat, site_id_of, wait_succeeded
from tests.agent_fixtures import ChatFactory, EngineFactory, make_site
from tools.backups import ago, size_in_words

# Fixed moments, so the words do not depend on today's date.
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
TUESDAY_9 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _site_with(api: httpx.Client, provider: MemoryProvider, name: str, database: str) -> str:
    """Acme's new ready site `name`, its database holding `database`; its id."""
    make_site(api, "acme", name)
    site_id = site_id_of(api, name)
    provider.write_content(site_id, "database", database)
    return site_id


def _backup(api: httpx.Client) -> dict[str, Any]:
    """A manual backup of crumbs, taken and succeeded."""
    backup: dict[str, Any] = wait_succeeded(api, api.post(f"{SITES}/crumbs/backups"))["backup"]
    return backup


def test_words_for_times_and_sizes() -> None:
    assert ago(datetime(2026, 12, 1, 8, 59, 30, tzinfo=UTC), TUESDAY_9) == "just now"
    assert ago(datetime(2026, 12, 1, 8, 59, tzinfo=UTC), TUESDAY_9) == "1 minute ago"
    assert ago(datetime(2026, 12, 1, 6, 30, tzinfo=UTC), TUESDAY_9) == "2 hours ago"
    assert ago(datetime(2026, 11, 30, 23, 0, tzinfo=UTC), TUESDAY_9) == "yesterday"
    assert ago(datetime(2026, 11, 27, 9, 0, tzinfo=UTC), TUESDAY_9) == "4 days ago"
    assert [size_in_words(n) for n in (None, 0, 1023, 1024, 5 * 1024**2 + 1)] == [
        None, "0 B", "1023 B", "1.0 KiB", "5.0 MiB"]  # fmt: skip


def test_backup_site_takes_a_manual_backup_and_list_backups_shows_it(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    alice = scripted_chat(
        engine_factory, chat, ("backup_site", {"site": "crumbs"}),
        ("list_backups", {"site": "crumbs"}),
    )  # fmt: skip
    taken = alice.say("back up crumbs")
    assert taken.interrupt is None  # nothing is replaced: no confirmation
    (result,) = taken.executed
    assert result["status"] == "ok", result
    backup = result["data"]["backup"]
    assert (backup["kind"], backup["status"], backup["verified"]) == ("manual", "succeeded", True)
    assert backup["taken"].endswith("(just now)")
    steps = {e.get("step") for e in taken.events if e["type"] == "progress"}
    assert {"backup", "retention"} <= steps  # the operation's progress was relayed
    stored = admin_api.get(f"{SITES}/crumbs/backups").json()
    assert [b["id"] for b in stored] == [backup["id"]]
    listed = alice.say("which backups does crumbs have?")
    (shown,) = listed.executed[0]["data"]["backups"]
    assert shown["id"] == backup["id"] and shown["size"] == size_in_words(stored[0]["size_bytes"])


def test_restore_asks_naming_the_backups_time_then_restores_after_a_backup_of_now(
    engine_factory: EngineFactory,
    chat: ChatFactory,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    site_id = _site_with(admin_api, memory_provider, "crumbs", "the good posts")
    with clock.travel(MONDAY_10):
        backup = _backup(admin_api)
    memory_provider.write_content(site_id, "database", "a broken database")
    call = ("restore_site", {"site": "crumbs", "backup": backup["id"]})
    with clock.travel(TUESDAY_9):
        alice = scripted_chat(engine_factory, chat, call, call)
        asked = alice.say("put crumbs back to yesterday's backup")
        assert asked.executed == []
        (action,) = asked.interrupt["actions"] if asked.interrupt else [None]
        assert action is not None
        assert action["backup_time"] == "Monday 30 November 2026 at 10:00 UTC (yesterday)"
        assert action["question"] == (
            "Restore site crumbs of tenant acme to its manual backup of Monday 30 November "
            "2026 at 10:00 UTC (yesterday)? The site's database and wp-content are replaced "
            "with the backup's: every change since then is lost. A backup of the site as it "
            "is now is taken first, and visitors see a maintenance page while it runs."
        )
        cancelled = alice.resume(False)
        assert [r["status"] for r in cancelled.executed] == []
        assert operations_of(admin_api, "restore_site") == []
        assert memory_provider.content(site_id)["database"] == "a broken database"

        alice.say("restore it after all")
        done = alice.resume(True)
    (result,) = done.executed
    assert result["status"] == "ok", result
    assert memory_provider.content(site_id)["database"] == "the good posts"
    assert not memory_provider.in_maintenance(site_id)
    kinds = {b["id"]: b["kind"] for b in admin_api.get(f"{SITES}/crumbs/backups").json()}
    assert kinds[result["data"]["pre_restore_backup"]] == "pre-restore"
    (restore,) = operations_of(admin_api, "restore_site")
    assert restore["status"] == "succeeded"
    assert {"pre_restore", "swap", "probe"} <= {
        e.get("step") for e in done.events if e["type"] == "progress"
    }


def test_a_viewer_is_refused_a_restore_a_backup_and_an_undelete_without_being_asked(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    backup = _backup(admin_api)
    vera = scripted_chat(
        engine_factory, chat, ("restore_site", {"site": "crumbs", "backup": backup["id"]}),
        ("backup_site", {"site": "crumbs"}), ("list_backups", {"site": "crumbs"}),
        ("undelete_site", {"site": "bakery"}), role="viewer", sub="vera",
    )  # fmt: skip
    refused = vera.say("restore crumbs")
    assert refused.interrupt is None and [r["status"] for r in refused.executed] == []
    assert "does not allow your role (viewer) to restore site crumbs while it is ready" in (
        refused.reply
    )
    not_taken = vera.say("back up crumbs")
    assert [r["status"] for r in not_taken.executed] == ["error"]
    assert not_taken.executed[0]["error"] == "role 'viewer' may not backup sites"
    assert operations_of(admin_api, "restore_site") == []
    assert len(admin_api.get(f"{SITES}/crumbs/backups").json()) == 1
    listed = vera.say("list crumbs's backups")  # reading is allowed
    assert [b["id"] for b in listed.executed[0]["data"]["backups"]] == [backup["id"]]
    undelete = vera.say("bring back bakery")
    assert undelete.interrupt is None and undelete.executed == []
    assert "does not allow your role (viewer) to bring back deleted sites of tenant acme" in (
        undelete.reply
    )


def test_a_restore_of_a_wrong_backup_is_not_asked(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    alice = scripted_chat(
        engine_factory, chat, ("restore_site", {"site": "crumbs", "backup": "0" * 32})
    )
    turn = alice.say("restore crumbs")
    assert turn.interrupt is None
    assert f"backup '{'0' * 32}' of site 'crumbs' not found in tenant 'acme'" in turn.reply


def _delete(api: httpx.Client, name: str) -> None:
    wait_succeeded(api, api.delete(f"{SITES}/{name}"))


def test_undelete_by_name_brings_back_the_newest_deletion_of_that_name(
    engine_factory: EngineFactory,
    chat: ChatFactory,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    # crumbs was deleted twice (its second life last), and bakery after both.
    with clock.travel(datetime(2026, 11, 20, 10, 0, tzinfo=UTC)):
        _site_with(admin_api, memory_provider, "crumbs", "first life")
        _delete(admin_api, "crumbs")
    with clock.travel(MONDAY_10):
        _site_with(admin_api, memory_provider, "crumbs", "second life")
        _delete(admin_api, "crumbs")
    with clock.travel(datetime(2026, 11, 30, 18, 0, tzinfo=UTC)):
        _site_with(admin_api, memory_provider, "bakery", "bread")
        _delete(admin_api, "bakery")
    deleted = admin_api.get("/v1/tenants/acme/backups", params={"deleted": "true"}).json()
    assert sorted(b["site_name"] for b in deleted) == ["bakery", "crumbs", "crumbs"]
    second = next(b for b in deleted if b["site_name"] == "crumbs" and
                  b["created_at"].startswith("2026-11-30"))  # fmt: skip

    call = ("undelete_site", {"site": "crumbs"})
    with clock.travel(TUESDAY_9):
        alice = scripted_chat(engine_factory, chat, ("list_backups", {"deleted": True}), call, call)
        listed = alice.say("which deleted sites can come back?")
        shown = listed.executed[0]["data"]["backups"]
        assert [(b["site"], b["kind"]) for b in shown] == [
            ("bakery", "pre-delete"),
            ("crumbs", "pre-delete"),
            ("crumbs", "pre-delete"),
        ]
        assert shown[1]["site_deleted"].endswith("(yesterday)")
        asked = alice.say("bring back the crumbs site I deleted yesterday")
        assert asked.interrupt is not None and asked.executed == []
        (action,) = asked.interrupt["actions"]
        assert action["backup"] == second["id"]
        assert action["question"] == (
            "Bring back deleted site crumbs of tenant acme as a new site named crumbs, from "
            "the backup taken when it was deleted, Monday 30 November 2026 at 10:00 UTC "
            "(yesterday)? Its database and wp-content come back as they were then, with its "
            "addresses changed to the new site's."
        )
        assert admin_api.get(f"{SITES}/crumbs").status_code == 404  # nothing before the answer
        done = alice.resume(True)
        (result,) = done.executed
        assert result["status"] == "ok", result
        assert result["data"]["status"] == "ready"
        assert memory_provider.content(site_id_of(admin_api, "crumbs"))["database"] == "second life"

        again = alice.say("bring back crumbs")  # the name is taken now
    assert again.interrupt is None
    assert "a site named crumbs exists in tenant acme: give the deleted site a new_name" in (
        again.reply
    )


def test_the_offline_planner_restores_the_backup_of_the_day_named(
    chat: ChatFactory, admin_api: httpx.Client, memory_provider: MemoryProvider
) -> None:
    site_id = _site_with(admin_api, memory_provider, "crumbs", "monday's posts")
    with clock.travel(MONDAY_10):
        monday = _backup(admin_api)
    memory_provider.write_content(site_id, "database", "tuesday's posts")
    with clock.travel(TUESDAY_9):
        wait_succeeded(admin_api, admin_api.post(f"{SITES}/crumbs/backups"))
        alice = chat("tenant", "acme", sub="alice", email="alice@acme.example")
        asked = alice.say("restore crumbs to yesterday's backup")
        assert [c["name"] for c in asked.proposed] == ["list_backups", "restore_site"]
        assert asked.interrupt is not None
        (action,) = asked.interrupt["actions"]
        assert action["backup"] == monday["id"]  # not Tuesday's, the newer one
        memory_provider.write_content(site_id, "database", "broken")
        done = alice.resume(True)
    assert "Restored **crumbs** to its manual backup of Monday 30 November 2026" in done.reply
    assert memory_provider.content(site_id)["database"] == "monday's posts"
