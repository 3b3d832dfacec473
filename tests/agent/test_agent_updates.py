"""The agent's update tools against the control plane (memory provider): list_packages
names what has an update, update_site asks first listing exactly the dry run's changes, then
updates or reports the rollback with the failed check, and bulk_sites confirms an update
(listing the sites) but not a backup, and answers "n of m updated, k failed: site (reason)"."""

from __future__ import annotations

from typing import Any

import httpx

from controlplane.providers.memory import MEMORY_CORE_VERSION, MEMORY_THEME, MemoryProvider
from tests import package_zips as zips
from tests.agent.scripted import ScriptedModel
from tests.agent_fixtures import ChatFactory, Chatter, EngineFactory, make_site

SITES = "/v1/tenants/acme/sites"


def _catalogue(api: httpx.Client, *versions: str, slug: str = zips.DEMO) -> None:
    for version in versions:
        added = api.post("/v1/catalogue?kind=plugin",
                         files={"file": ("demo.zip", zips.plugin_zip(version, slug))})  # fmt: skip
        assert added.status_code == 201, added.text


def _give_demo(
    api: httpx.Client, memory: MemoryProvider, site: str, version: str, *others: str
) -> None:
    """The site has the demo plugin (and `others`) at `version`, active (as a bundle would
    leave it)."""
    site_id = api.get(f"{SITES}/{site}").json()["id"]
    plugins = {slug: {"version": version, "name": f"Demo {slug}", "active": True}
               for slug in (zips.DEMO, *others)}  # fmt: skip
    memory.backup_state["packages"][site_id] = {
        "core": MEMORY_CORE_VERSION, "db_version": MEMORY_CORE_VERSION, "plugin": plugins,
        "theme": {MEMORY_THEME: {"version": "1.0", "name": "Twenty Twenty-Four"}},
        "stylesheet": MEMORY_THEME,
    }  # fmt: skip


def _demo_version(api: httpx.Client, site: str) -> str:
    listing = api.get(f"{SITES}/{site}/packages").json()
    (demo,) = [p for p in listing["plugins"] if p["slug"] == "demo"]
    return str(demo["version"])


def _scripted(engine_factory: EngineFactory, chat: ChatFactory, *calls: Any, **who: Any) -> Chatter:
    model = ScriptedModel(script=[[call] for call in calls])
    role, sub = who.pop("role", "tenant"), who.pop("sub", "alice")
    return chat(role, "acme", sub=sub, email=f"{sub}@acme.example", engine_=engine_factory(model))


def _action(turn: Any) -> dict[str, Any]:
    assert turn.interrupt is not None, turn.reply
    (action,) = turn.interrupt["actions"]
    assert isinstance(action, dict)
    return action


def _operations(api: httpx.Client, kind: str) -> list[dict[str, Any]]:
    return [op for op in api.get("/v1/tenants/acme/operations").json() if op["kind"] == kind]


def test_list_packages_then_an_update_confirmed_with_its_changes(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:  # fmt: skip
    make_site(admin_api, "acme", "shop")
    _give_demo(admin_api, memory_provider, "shop", "1.0", "extra")
    _catalogue(admin_api, "1.1")
    _catalogue(admin_api, "1.1", slug="extra")  # has an update too: only demo is asked for
    update = ("update_site", {"site": "shop", "plugins": [{"slug": "demo"}]})
    alice = _scripted(engine_factory, chat, ("list_packages", {"site": "shop"}), update, update)

    listed = alice.say("what plugins does shop have?")
    (result,) = listed.executed
    assert result["status"] == "ok", result
    assert result["data"]["updates"] == ["demo 1.0 -> 1.1", "extra 1.0 -> 1.1"]
    assert [(p["slug"], p["version"], p["latest"]) for p in result["data"]["plugins"]] == [
        ("demo", "1.0", "1.1"), ("extra", "1.0", "1.1"),
    ]  # fmt: skip

    asked = alice.say("update the demo plugin on shop")
    assert asked.executed == []
    action = _action(asked)
    assert action["changes"] == ["demo 1.0 -> 1.1"]
    assert action["question"].startswith("Update site shop of tenant acme: demo 1.0 -> 1.1? ")
    assert "backup is taken first" in action["question"]
    assert "rolled back" in action["question"]
    cancelled = alice.resume(False)
    assert cancelled.executed == []
    assert _operations(admin_api, "update_site") == [] and _demo_version(admin_api, "shop") == "1.0"

    alice.say("update it after all")
    done = alice.resume(True)
    (updated,) = done.executed
    assert updated["status"] == "ok", updated
    assert updated["data"]["changes"] == ["demo 1.0 -> 1.1"]
    assert updated["data"]["rolled_back"] is False
    assert _demo_version(admin_api, "shop") == "1.1"
    steps = {e.get("step") for e in done.events if e["type"] == "progress"}
    assert {"pre_update", "install", "probe"} <= steps  # the operation's progress was relayed


def test_a_failed_check_is_reported_as_a_rollback_naming_the_check(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client,
    memory_provider: MemoryProvider, fast_probe: None,
) -> None:  # fmt: skip
    make_site(admin_api, "acme", "shop")
    _give_demo(admin_api, memory_provider, "shop", "1.0")
    _catalogue(admin_api, zips.BROKEN)
    memory_provider.package_state.broken.add(f"plugin:demo:{zips.BROKEN}")
    alice = _scripted(engine_factory, chat, ("update_site", {"site": "shop"}))
    asked = alice.say("update shop")
    assert _action(asked)["changes"] == [f"demo 1.0 -> {zips.BROKEN}"]
    done = alice.resume(True)
    (result,) = done.executed
    assert result["status"] == "error" and result["data"]["rolled_back"] is True, result
    assert result["error"] == (
        "the update of shop was rolled back from its pre-update backup: the site is as it was "
        "before: update rolled back: php_fatal: PHP Fatal error in plugin demo 1.2"
    )
    assert _demo_version(admin_api, "shop") == "1.0"


def test_a_viewer_is_refused_an_update_without_being_asked(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:  # fmt: skip
    make_site(admin_api, "acme", "shop")
    _give_demo(admin_api, memory_provider, "shop", "1.0")
    _catalogue(admin_api, "1.1")
    vera = _scripted(engine_factory, chat, ("update_site", {"site": "shop"}),
                     ("bulk_sites", {"action": "update", "sites": "all"}),
                     role="viewer", sub="vera")  # fmt: skip
    refused = vera.say("update shop")
    assert refused.interrupt is None and refused.executed == []
    assert "does not allow your role (viewer) to update site shop while it is ready" in (
        refused.reply
    )
    bulk = vera.say("update all my sites")
    assert bulk.interrupt is None and bulk.executed == []
    assert "does not allow your role (viewer) to update many sites of tenant acme" in bulk.reply
    assert _operations(admin_api, "update_site") == [] and _operations(admin_api, "bulk") == []


def test_bulk_backup_runs_at_once_and_bulk_update_asks_listing_the_sites(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client,
    memory_provider: MemoryProvider, fast_probe: None,
) -> None:  # fmt: skip
    for name in ("blog", "shop", "wiki"):
        make_site(admin_api, "acme", name)
        _give_demo(admin_api, memory_provider, name, "1.0")
    _catalogue(admin_api, "1.1")
    # wiki's install fails: one site's failure never stops the others.
    memory_provider.fail_on.add("install:packages:wiki")
    everything = ("bulk_sites", {"action": "update", "sites": "all"})
    alice = _scripted(engine_factory, chat, ("bulk_sites", {"action": "backup", "sites": "all"}),
                      everything, everything)  # fmt: skip

    backed_up = alice.say("back up everything")
    assert backed_up.interrupt is None  # a backup replaces nothing: no confirmation
    (result,) = backed_up.executed
    assert result["status"] == "ok", result
    assert result["data"]["summary"] == "3 of 3 backed up"
    assert len(_operations(admin_api, "backup_site")) == 3

    asked = alice.say("update all my sites")
    action = _action(asked)
    assert action["sites"] == ["blog", "shop", "wiki"]
    assert action["question"].startswith(
        "Update 3 sites of tenant acme (blog, shop, wiki) to the newest versions"
    )
    assert alice.resume(False).executed == [] and len(_operations(admin_api, "bulk")) == 1
    assert _operations(admin_api, "update_site") == []

    alice.say("yes, update them all")
    done = alice.resume(True)
    (updated,) = done.executed
    assert updated["status"] == "error", updated
    assert updated["data"]["failed_sites"] == ["wiki"]
    assert updated["error"].startswith("2 of 3 updated, 1 failed: wiki (update rolled back: ")
    assert "injected failure" in updated["error"]
    assert [_demo_version(admin_api, n) for n in ("blog", "shop", "wiki")] == ["1.1", "1.1", "1.0"]


def test_the_offline_planner_says_which_check_failed_and_that_the_update_was_rolled_back(
    chat: ChatFactory, admin_api: httpx.Client, memory_provider: MemoryProvider,
    fast_probe: None,
) -> None:  # fmt: skip
    make_site(admin_api, "acme", "shop")
    _give_demo(admin_api, memory_provider, "shop", "1.0")
    _catalogue(admin_api, "1.1", zips.BROKEN)
    memory_provider.package_state.broken.add(f"plugin:demo:{zips.BROKEN}")
    alice = chat("tenant", "acme", sub="alice", email="alice@acme.example")
    asked = alice.say("update the demo plugin on shop")
    assert [(c["name"], c["args"]) for c in asked.proposed] == [
        ("update_site", {"site": "shop", "plugins": [{"slug": "demo"}]})
    ]
    assert _action(asked)["changes"] == [f"demo 1.0 -> {zips.BROKEN}"]  # latest: the newest
    done = alice.resume(True)
    assert "rolled back from its pre-update backup" in done.reply
    assert "php_fatal: PHP Fatal error in plugin demo 1.2" in done.reply
    assert _demo_version(admin_api, "shop") == "1.0"
