"""One source for the tool list: the registry feeds the prompts and the widget's labels."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_type_hints

from fastapi.testclient import TestClient

from chatbot.graph import system_prompt
from chatbot.service import create_app
from chatbot.settings import ChatSettings
from controlplane.kernel.identity import Principal, Role
from tools.context import AgentContext
from tools.registry import toolset, toolset_for

ROOT = Path(__file__).resolve().parents[2]


def test_the_chat_service_serves_every_tool_with_its_label(chat_settings: ChatSettings) -> None:
    with TestClient(create_app(chat_settings)) as client:
        response = client.get("/v1/tools")  # no token: nothing in it is secret
    assert response.status_code == 200
    served = {tool["name"]: tool for tool in response.json()}
    specs = toolset(admin=True)
    assert set(served) == set(specs)
    for name, spec in specs.items():
        assert served[name]["description"] == spec.description
        assert served[name]["label"] == spec.label
        assert served[name]["destructive"] is spec.destructive
    assert served["delete_site"]["destructive"] is True
    # What replaces a site's content is confirmed; a clone or a drift report changes none.
    staging = ("clone_site", "get_drift", "promote_site", "rollback_site", "import_site")
    assert [n for n in staging if served[n]["destructive"]] == [
        "promote_site",
        "rollback_site",
        "import_site",
    ]
    assert not any(served[n]["admin_only"] for n in staging)  # every tenant role has them
    # Env changes restart every running site's PHP workers: the user confirms them too.
    assert [n for n in ("list_env", "set_env", "unset_env") if served[n]["destructive"]] == [
        "set_env",
        "unset_env",
    ]


def test_labels_name_only_arguments_the_tool_takes() -> None:
    for spec in toolset(admin=True).values():
        for argument in re.findall(r"\{(\w+)\}", spec.label):
            assert argument in spec.args_model.model_fields, (spec.name, argument)


def _prompt(role: Role) -> str:
    tenants = frozenset() if role is Role.ADMIN else frozenset({"acme"})
    principal = Principal("alice", role, tenants)
    tenant = None if role is Role.ADMIN else "acme"
    return system_prompt(AgentContext("token", principal, "http://127.0.0.1:1", tenant))


def test_each_prompt_lists_exactly_its_roles_tools_with_their_descriptions() -> None:
    for role in (Role.TENANT, Role.ADMIN):
        listed = re.findall(r"^- (\w+): (.+)$", _prompt(role), re.M)
        specs = toolset_for(role)
        assert [name for name, _ in listed] == list(specs)
        assert all(description == specs[name].description for name, description in listed)
    assert "list_tenants" not in dict(re.findall(r"^- (\w+): (.+)$", _prompt(Role.TENANT), re.M))


def test_the_chat_service_serves_the_control_planes_vocabulary(
    chat_settings: ChatSettings,
) -> None:
    from controlplane.api.routes.vocabulary import VOCABULARY

    with TestClient(create_app(chat_settings)) as client:
        response = client.get("/v1/vocabulary")  # no token: the words are not secret
    assert response.status_code == 200
    words = response.json()
    assert words == VOCABULARY.model_dump(mode="json")  # one vocabulary, two doors
    assert words["step_event_states"] == {
        "step_started": "running",
        "step_retrying": "running",
        "step_finished": "done",
        "step_failed": "failed",
        "step_undone": "undone",
    }
    assert words["finished_operation_statuses"] == [
        "succeeded",
        "failed",
        "rolled_back",
        "cancelled",
    ]
    # The widget and the dashboard read these words and keep no copy of their own.
    for script in ("widget.js", "sites.js"):
        source = (ROOT / "webchat" / script).read_text()
        assert "/vocabulary" in source, script
        assert not re.search(
            r"\b(step_finished|step_undone|operation_succeeded|rolled_back)\b", source
        ), script


def test_every_body_takes_its_args_model() -> None:
    """run_tool validates a call into spec.args_model and hands that to the body: each body
    (and confirm) must be written for that class or one it derives from (an admin's variant
    adds tenant_id to the tenant's class)."""
    for name, spec in toolset(admin=True).items():
        for body in (spec.body, spec.confirm):
            if body is None:
                continue
            takes = get_type_hints(body)["args"]
            assert issubclass(spec.args_model, takes), (name, body.__name__, takes)
