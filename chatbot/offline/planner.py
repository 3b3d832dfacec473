"""The offline planner: a chat model that turns English into the agent's tool calls.

It reads the conversation like any chat model would: earlier turns (what is being asked for
and what is still missing) and tool results (what to answer). Who is asking, for which
tenant and with which tools it learns from the Situation the graph hands it, built from the
verified token, never from the prompt's wording. State between
turns lives in the conversation itself: each question it asks carries the partial request
in the message's `additional_kwargs`, which the checkpointer keeps like any message field.
"""

from __future__ import annotations

import json
import re
import uuid
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from chatbot.offline import answers, diagnosis
from chatbot.offline.parse import (
    STAGING_WORDS,
    Parsed,
    bulk_action,
    env_request,
    parse,
    staging_request,
    update_request,
)
from chatbot.offline.parse import period as parse_period
from chatbot.situation import SITUATION_KWARG, Situation
from controlplane.kernel import names

PLAN_KEY = "aipress_plan"
SITE_INTENTS = ("get_site", "delete_site", "query_logs", "get_metrics", "backup_site",
                "list_backups", "restore_site", "list_packages", "update_site",
                "diagnose")  # fmt: skip
# The one-site asks that take several sites in one message ("back up crumbs and shop").
MANY_SITES = frozenset(SITE_INTENTS) - {"restore_site"}
ENV_INTENTS = ("list_env", "set_env", "unset_env")
STAGING_INTENTS = ("clone_site", "get_drift", "promote_site", "rollback_site", "import_site")
BACKUP_ID = re.compile(r"\b[0-9a-f]{32}\b")
QUESTION = re.compile(r"\b(which|what|list|show|any|how\s+many)\b", re.I)
TENANTLESS = ("list_tenants", "billing_summary")  # admin intents about the whole platform
SUMMARY = re.compile(
    r"\b(which|what|top|most|least|rank\w*|all|every|each|per)\s+(\w+\s+)?tenants?\b|"
    r"\btenants?\b.*\b(most|least|expensive|cheapest|highest|lowest)\b|\bsummary\b|"
    r"\boverall\b|\bplatform[- ]wide\b|\bwhole platform\b",
    re.I,
)
VERBS = {"delete_site": "delete", "get_site": "look at", "query_logs": "check the logs of",
         "get_metrics": "measure", "backup_site": "back up",
         "list_backups": "list the backups of", "restore_site": "restore",
         "list_packages": "list the plugins and themes of", "update_site": "update",
         "diagnose": "diagnose"}  # fmt: skip
# What a message said not to do, in the answer that does nothing.
NOT_DOING = {"delete_site": "delete", "create_site": "create", "backup_site": "back up",
             "restore_site": "restore", "update_site": "update", "bulk_sites": "change",
             "clone_site": "clone", "promote_site": "promote", "rollback_site": "roll back",
             "import_site": "import into", "undelete_site": "bring back"}  # fmt: skip
NOT_DONE = {"restore_site": "restored", "undelete_site": "brought back", "update_site": "updated"}
CANCELLED = {
    "bulk_sites": "Cancelled: nothing was started; every site is as it was.",
    "promote_site": "Cancelled: nothing was promoted; production is as it was.",
    "rollback_site": "Cancelled: production was not rolled back. Nothing changed.",
    "import_site": "Cancelled: nothing was imported into {site}. Nothing changed.",
}
HELP = (
    "I can create a WordPress site, show your sites and their status, search a site's logs "
    '("errors on crumbs in the last hour"), tell you whether a site is slow, report costs, '
    'set or remove env vars and secrets ("store STRIPE_KEY as a secret"), back a site up or '
    "restore a backup, delete a site (or bring a deleted one back), clone a site to staging "
    '("clone shop to shop-staging"), tell you what changed on production since, push staging '
    'live ("only pages"), roll a promotion back, and import a site from elsewhere; deletes, '
    "restores, promotions, imports and env changes wait for your confirmation. What would you "
    "like to do?"
)
NO_CREDENTIALS_IN_CHAT = (
    "I never show passwords, tokens or secret values in chat. A site's admin password is "
    "available once through the Reveal password action next to the site; secrets you store "
    "for integrations are write-only."
)


@dataclass
class Plan:
    """A request being assembled over turns."""

    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    awaiting: str | None = None

    def dump(self) -> dict[str, Any]:
        """For additional_kwargs."""
        return {"intent": self.intent, "slots": self.slots, "awaiting": self.awaiting}


def _day_named(text: str, today: date) -> str | None:
    """The ISO day 'today' or 'yesterday' names, if the text says one."""
    if re.search(r"\byesterday\b", text, re.I):
        return (today - timedelta(days=1)).isoformat()
    if re.search(r"\btoday\b", text, re.I):
        return today.isoformat()
    return None


def _update_args(slots: dict[str, Any]) -> dict[str, Any]:
    """update_site's arguments from what the user named (nothing named: everything)."""
    args: dict[str, Any] = {}
    if slots.get("plugins"):
        args["plugins"] = [{"slug": slug} for slug in slots["plugins"]]
    if slots.get("themes"):
        args["themes"] = [{"slug": slug} for slug in slots["themes"]]
    if slots.get("core"):
        args["core"] = "latest"
    return args


def _call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:16]}", "type": "tool_call"}


def _site_in_result(content: str) -> str | None:
    """The one site a tool result is about (a list of exactly one counts)."""
    try:
        data = json.loads(content).get("data") or {}
    except (ValueError, AttributeError):
        return None
    if not isinstance(data, dict):
        return None
    sites = data.get("sites")
    if isinstance(sites, list):
        return str(sites[0]["name"]) if len(sites) == 1 else None
    value = data.get("site") if isinstance(data.get("site"), str) else data.get("name")
    return str(value) if value else None


def _plan_of(message: BaseMessage) -> dict[str, Any]:
    value = message.additional_kwargs.get(PLAN_KEY) if isinstance(message, AIMessage) else None
    return value if isinstance(value, dict) else {}


class Planner:
    """The decision logic, separate from LangChain's model plumbing."""

    def respond(self, messages: Sequence[BaseMessage], situation: Situation) -> AIMessage:
        """The next assistant message: a question, tool calls, or an answer."""
        if messages and isinstance(messages[-1], ToolMessage):
            return self._answer(messages, situation)
        human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        if human is None:
            return AIMessage(content=HELP)
        return self._plan(str(human.content), messages, situation)

    # -- memory ---------------------------------------------------------------------------

    def _pending(self, messages: Sequence[BaseMessage]) -> Plan | None:
        for message in reversed(messages[:-1]):
            if isinstance(message, AIMessage):
                plan = _plan_of(message)
                if plan.get("awaiting"):
                    return Plan(plan["intent"], dict(plan.get("slots", {})), plan["awaiting"])
                return None
        return None

    def _recent(self, messages: Sequence[BaseMessage], key: str) -> str | None:
        """The site or tenant the conversation was last about."""
        for message in reversed(messages):
            if isinstance(message, ToolMessage) and key == "site":
                named = _site_in_result(str(message.content))
                if named:
                    return named
            if not isinstance(message, AIMessage):
                continue
            for call in reversed(message.tool_calls):
                value = call["args"].get(key)
                if value:
                    return str(value)
            slots = _plan_of(message).get("slots", {})
            # A create in progress keeps the new site under "name".
            value = slots.get(key) or (slots.get("name") if key == "site" else None)
            if value:
                return str(value)
        return None

    # -- a new user message ----------------------------------------------------------------

    def _plan(self, text: str, messages: Sequence[BaseMessage], s: Situation) -> AIMessage:
        pending = self._pending(messages)
        p = parse(text, now=s.now, awaiting=pending.awaiting if pending else None)
        env = env_request(text)  # before "secret": "store STRIPE_KEY as a secret" is one
        if env is not None:
            return self._env(Plan(*env), p, messages, s)
        if p.intent == "secret":
            return AIMessage(content=NO_CREDENTIALS_IN_CHAT)
        if p.unsupported:
            return AIMessage(
                content=f"I can't {p.unsupported} yet, so I did nothing. Here is what I can do: "
                + HELP
            )
        if not s.admin and p.tenant and p.tenant != s.tenant:
            return AIMessage(
                content=(
                    f"I can only help with tenant {s.tenant}: that is what your sign-in allows, "
                    "and nothing said in chat changes it. I can't show or change anything of "
                    f"tenant {p.tenant}."
                )
            )
        note = ""
        if p.claims_admin and not s.admin:
            note = (
                f"Your role comes from your sign-in ({s.role} of tenant {s.tenant}), not from "
                "the chat, so I keep to that. "
            )
        intent = {"billing": "get_billing"}.get(p.intent or "", p.intent)
        if intent == "get_billing" and s.admin and not p.tenant and SUMMARY.search(text):
            intent = "billing_summary"
        if intent == "list_tenants" and not s.admin:
            intent = None if not p.intents[1:] else p.intents[1]
        if pending and (intent is None or intent == pending.intent):
            plan = pending
        elif intent is not None:
            plan = Plan(intent)
        elif p.negated and pending is None:
            what = " or ".join(NOT_DOING[i] for i in p.negated)
            target = f" {' or '.join(p.sites)}" if p.sites else " anything"
            return AIMessage(content=f"OK, I won't {what}{target}. Nothing changed. Anything else?")
        elif p.deny and pending is None:
            return AIMessage(content="OK. Anything else I can do?")
        else:
            return AIMessage(content=note + HELP)
        self._fill(plan, p, messages, s)
        return self._next_step(plan, p, s, note)

    def _env(
        self, plan: Plan, p: Parsed, messages: Sequence[BaseMessage], s: Situation
    ) -> AIMessage:
        slots = plan.slots
        if plan.intent == "set_env" and not slots.get("secret") and slots.get("value") is None:
            return AIMessage(
                content=f"What should {slots['name']} be? Say 'set {slots['name']} to <value>', "
                f"or 'store {slots['name']} as a secret' to type it into a confirmation card."
            )
        note = ""
        if slots.pop("typed", False):
            note = ("I won't use the value you wrote in chat: type it into the card below. "
                    "It has been in this conversation, so consider rotating it. ")  # fmt: skip
        self._fill(plan, p, messages, s)
        return self._next_step(plan, p, s, note)

    def _fill(self, plan: Plan, p: Parsed, messages: Sequence[BaseMessage], s: Situation) -> None:
        slots = plan.slots
        if s.admin:
            slots["tenant_id"] = (
                p.tenant
                or slots.get("tenant_id")
                or (self._recent(messages, "tenant_id") if plan.intent != "list_tenants" else None)
            )
        if plan.intent == "create_site":
            if p.site:
                slots["name"] = p.site
                slots.pop("invalid_name", None)
            elif p.invalid_site:
                slots["invalid_name"] = p.invalid_site
            if p.email:
                slots["admin_email"] = p.email
            elif (p.own_email or (p.affirm and plan.awaiting == "admin_email")) and s.email:
                slots["admin_email"] = s.email
            if p.domain:
                slots["domain"] = p.domain
            if p.title:
                slots["title"] = p.title
        elif plan.intent in SITE_INTENTS:
            key = "site"
            if p.site:
                slots[key] = p.site
                slots["more_sites"] = p.sites[1:] if plan.intent in MANY_SITES else []
            elif not slots.get(key) and (p.pronoun or plan.awaiting is None):
                recent = self._recent(messages, "site")
                if recent:
                    slots[key] = recent
            if plan.intent == "query_logs":
                if p.window.explicit or "since" not in slots:
                    slots.update(since=p.window.since, until=p.window.until, label=p.window.label)
                if p.severity or p.status or "severity" not in slots:
                    slots.update(severity=p.severity, status=p.status)
            if plan.intent == "restore_site":
                found = BACKUP_ID.search(p.text)
                slots["backup"] = found.group(0) if found else slots.get("backup")
                slots["day"] = _day_named(p.text, s.today) or slots.get("day")
            if plan.intent in ("get_metrics", "diagnose") and (
                p.window.explicit or "since" not in slots
            ):
                slots.update(since=p.window.since, label=p.window.label)
            if plan.intent == "update_site" and not plan.awaiting:
                wanted = update_request(p.text)
                slots.update(plugins=wanted.plugins, themes=wanted.themes, core=wanted.core)
        elif plan.intent == "bulk_sites":
            slots["action"] = bulk_action(p.text) or slots.get("action")
        elif plan.intent in STAGING_INTENTS:
            self._fill_staging(plan, p, messages)
        elif plan.intent == "undelete_site":
            if p.site:
                slots["site"] = p.site
            slots["day"] = _day_named(p.text, s.today) or slots.get("day")
            slots["question"] = bool(QUESTION.search(p.text)) and not p.site
        elif plan.intent in ("get_billing", "billing_summary"):
            period = p.period
            if p.compare and re.search(r"\bthis month\b", p.text, re.I):
                period = parse_period("this month", s.today)  # the base; the other is derived
            if period is not None and (period.explicit or "from_date" not in slots):
                slots.update(
                    from_date=period.start.isoformat(),
                    to_date=period.end.isoformat(),
                    label=period.label,
                )
            slots["group_by"] = p.group_by or slots.get("group_by") or "service"
            slots["compare"] = p.compare or slots.get("compare", False)

    def _fill_staging(self, plan: Plan, p: Parsed, messages: Sequence[BaseMessage]) -> None:
        slots = plan.slots
        found = staging_request(p.text)
        named = p.site if p.site not in STAGING_WORDS else None
        if plan.intent == "clone_site":
            source = found.source or (named if named != found.target else None)
            if source:
                slots["site"] = source
            elif not slots.get("site") and p.pronoun:
                slots["site"] = self._recent(messages, "site")
            if plan.awaiting == "site" and not source and named:
                slots["site"] = named
            if found.target:
                slots["name"] = found.target
            slots["basic_auth"] = found.basic_auth or slots.get("basic_auth", False)
        elif plan.intent == "import_site":
            if named and named != found.site:
                slots["site"] = named
            elif not slots.get("site") and p.pronoun:
                slots["site"] = self._recent(messages, "site")
            if found.old_url:
                slots["old_url"] = found.old_url
            elif plan.awaiting == "old_url" and p.domain:
                slots["old_url"] = f"https://{p.domain}"
            slots["admin"] = found.admin or slots.get("admin") or "keep"
        else:
            site = found.site or named
            if site:
                slots["site"] = site
            if plan.intent == "promote_site":
                slots.update(scope=found.scope, groups=found.groups, force=found.force)

    def _staging_step(self, plan: Plan, s: Situation, note: str) -> AIMessage:
        """The next call of a clone, drift, promote, rollback or import request."""
        slots = plan.slots
        base = {"tenant_id": slots["tenant_id"]} if s.admin else {}
        if plan.intent == "clone_site":
            if not slots.get("site"):
                return self._ask(plan, "site", note + "Which site should I clone to staging?")
            name = slots.get("name") or f"{slots['site']}-staging"
            args = {**base, "site": slots["site"], "name": name}
            if slots.get("basic_auth"):
                args["basic_auth"] = True
            return self._tools(note + f"Cloning {slots['site']} to {name}…",
                               [("clone_site", args, None)])  # fmt: skip
        if plan.intent == "import_site":
            if not slots.get("site"):
                return self._ask(plan, "site", note + "Which of your sites should the import "
                                 "go into? Its database and files are replaced.")  # fmt: skip
            if not slots.get("old_url"):
                return self._ask(plan, "old_url", note + "What was the site's old address "
                                 "(e.g. https://old.example.com)? Its links are rewritten to "
                                 f"{slots['site']}'s.")  # fmt: skip
            args = {**base, "site": slots["site"], "old_url": slots["old_url"],
                    "admin": slots.get("admin") or "keep"}  # fmt: skip
            return self._tools(note, [("import_site", args, None)])
        args = {**base, **({"site": slots["site"]} if slots.get("site") else {})}
        if (
            plan.intent != "promote_site"
            or slots.get("scope") != "database"
            or not slots.get("groups")
        ):
            if plan.intent == "promote_site":
                args.update(scope=slots.get("scope", "all"))
                if slots.get("force"):
                    args["force"] = True
            return self._tools(note, [(plan.intent, args, None)])
        # Which tables "only pages" means: the site's own, as get_drift names them.
        then = "promote:" + json.dumps({"groups": slots["groups"], "force": slots["force"]})
        return self._tools(note, [("get_drift", args, then)])

    def _promote_after_drift(self, then: str, args: dict[str, Any], content: str) -> AIMessage:
        """The promotion a drift report was read for, of the tables the words named."""
        wanted = json.loads(then.removeprefix("promote:"))
        result = json.loads(content)
        if result.get("status") != "ok":
            return AIMessage(content=answers.failure("get_drift", args, result))
        tables = [t for t in result["data"]["tables"] if answers.table_words(t) in wanted["groups"]]
        if not tables:
            what = " and ".join(wanted["groups"])
            return AIMessage(
                content=f"{result['data']['site']} has no tables of {what} to promote."
            )
        promote = {**args, "site": result["data"]["site"], "scope": "database", "tables": tables}
        if wanted["force"]:
            promote["force"] = True
        return self._tools("", [("promote_site", promote, None)])

    def _ask(self, plan: Plan, awaiting: str, question: str) -> AIMessage:
        plan.awaiting = awaiting
        return AIMessage(content=question, additional_kwargs={PLAN_KEY: plan.dump()})

    def _next_step(self, plan: Plan, p: Parsed, s: Situation, note: str) -> AIMessage:
        slots = plan.slots
        if s.admin and plan.intent not in TENANTLESS and not slots.get("tenant_id"):
            return self._ask(plan, "tenant_id", note + "Which tenant is this about? (e.g. 'acme')")
        if plan.intent == "create_site":
            if not slots.get("name"):
                invalid = slots.pop("invalid_name", None)
                reason = ""
                if invalid:
                    try:
                        names.check_site_name(invalid)
                    except ValueError as exc:
                        reason = f"'{invalid}' can't be used: {exc}. "
                return self._ask(
                    plan,
                    "name",
                    note + reason + "What should the site be called? A short name like "
                    "'crumbs' (lowercase letters, digits and hyphens) becomes part of its address.",
                )
            if not slots.get("admin_email"):
                mine = f" Say 'mine' to use {s.email}." if s.email else ""
                return self._ask(
                    plan,
                    "admin_email",
                    note + f"Which e-mail should the WordPress admin account of "
                    f"{slots['name']} use?{mine}",
                )
            # The slot is the new site's "name" (what the user is asked for); the tool's
            # argument for a site is "site", as in every tool.
            args = {"site" if k == "name" else k: slots[k]
                    for k in ("name", "admin_email", "title", "domain", "tenant_id")
                    if slots.get(k)}  # fmt: skip
            return self._tools(note + f"Creating {slots['name']}…", [("create_site", args, None)])
        if plan.intent in SITE_INTENTS:
            key = "site"
            if not slots.get(key):
                verb = VERBS[plan.intent]
                return self._ask(plan, key, note + f"Which site should I {verb}?")
            args = {key: slots[key]}
            if s.admin:
                args["tenant_id"] = slots["tenant_id"]
            label = slots.get("label")
            tool = plan.intent
            if tool == "diagnose":
                tool = "diagnose_site" if "diagnose_site" in s.tools else "get_metrics"
            if plan.intent == "query_logs":
                args.update({k: slots[k] for k in ("since", "until", "severity", "status")
                             if slots.get(k)})  # fmt: skip
            if tool in ("get_metrics", "diagnose_site"):
                args["since"] = slots.get("since", "1h")
            if plan.intent == "update_site":
                args.update(_update_args(slots))
            if plan.intent == "restore_site" and slots.get("backup"):
                args["backup"] = slots["backup"]
            elif plan.intent == "restore_site":
                # Which backup: the newest (of the day named) that list_backups shows.
                return self._tools(
                    note, [("list_backups", args, f"restore:{slots.get('day') or ''}")]
                )
            sites = [slots[key], *slots.get("more_sites", [])]
            return self._tools(note, [(tool, {**args, key: site}, label) for site in sites])
        if plan.intent in ENV_INTENTS:
            return self._tools(note, [(plan.intent, slots, None)])
        if plan.intent == "bulk_sites":
            args = {"action": slots["action"], "sites": "all"}
            if s.admin:
                args["tenant_id"] = slots["tenant_id"]
            return self._tools(note, [("bulk_sites", args, None)])
        if plan.intent in STAGING_INTENTS:
            return self._staging_step(plan, s, note)
        if plan.intent == "undelete_site":
            base = {"tenant_id": slots["tenant_id"]} if s.admin else {}
            if slots.get("site"):
                return self._tools(note, [("undelete_site", {**base, "site": slots["site"]}, None)])
            then = None if slots.get("question") else f"undelete:{slots.get('day') or ''}"
            return self._tools(note, [("list_backups", {**base, "deleted": True}, then)])
        if plan.intent == "get_billing":
            base = {"from_date": slots["from_date"], "to_date": slots["to_date"],
                    "group_by": slots["group_by"]}  # fmt: skip
            if s.admin:
                base["tenant_id"] = slots["tenant_id"]
            calls = [("get_billing", base, slots.get("label"))]
            if slots.get("compare"):
                calls.append(("get_billing", *self._previous(base, s.today)))
            return self._tools(note, calls)
        if plan.intent == "billing_summary":
            args = {"from_date": slots["from_date"], "to_date": slots["to_date"]}
            return self._tools(note, [("billing_summary", args, slots.get("label"))])
        args = {"tenant_id": slots["tenant_id"]} if s.admin and plan.intent == "list_sites" else {}
        return self._tools(note, [(plan.intent, args, None)])

    def _previous(self, base: dict[str, Any], today: date) -> tuple[dict[str, Any], str]:
        start = date.fromisoformat(base["from_date"])
        end = date.fromisoformat(base["to_date"])
        if start.day == 1:
            prev_end = start - timedelta(days=1)
            prev_start = prev_end.replace(day=1)
            label = prev_start.strftime("%B %Y")
        else:
            span = end - start
            prev_end = start - timedelta(days=1)
            prev_start = prev_end - span
            label = f"{prev_start} to {prev_end}"
        return {**base, "from_date": prev_start.isoformat(), "to_date": prev_end.isoformat()}, label

    def _tools(
        self, content: str, calls: list[tuple[str, dict[str, Any], str | None]]
    ) -> AIMessage:
        tool_calls = [_call(name, args) for name, args, _ in calls]
        labels = {
            c["id"]: label for c, (_, _, label) in zip(tool_calls, calls, strict=True) if label
        }
        return AIMessage(
            content=content.strip(),
            tool_calls=tool_calls,
            additional_kwargs={PLAN_KEY: {"labels": labels}} if labels else {},
        )

    # -- tool results ----------------------------------------------------------------------

    def _answer(self, messages: Sequence[BaseMessage], s: Situation) -> AIMessage:
        results: list[ToolMessage] = []
        index = len(messages) - 1
        while index >= 0 and isinstance(messages[index], ToolMessage):
            results.insert(0, messages[index])  # type: ignore[arg-type]
            index -= 1
        caller = messages[index] if index >= 0 else None
        calls = {c["id"]: c for c in caller.tool_calls} if isinstance(caller, AIMessage) else {}
        labels = _plan_of(caller).get("labels", {}) if caller is not None else {}
        parts: list[str] = []
        follow_up: Plan | None = None
        for message in results:
            call: dict[str, Any] = dict(
                calls.get(message.tool_call_id) or {"name": message.name or "tool", "args": {}}
            )
            try:
                result = json.loads(str(message.content))
            except ValueError:
                result = {"status": "error", "error": str(message.content)}
            text, plan = self._describe(
                call["name"], call["args"], result, labels.get(message.tool_call_id)
            )
            parts.append(text)
            follow_up = follow_up or plan
        bills = [(json.loads(str(m.content)), labels.get(m.tool_call_id) or "this period")
                 for m in results if m.name == "get_billing"]  # fmt: skip
        if len(bills) == 2 and all(b[0].get("status") == "ok" for b in bills):
            sentence = answers.compare(bills[0][0], bills[1][0], (bills[0][1], bills[1][1]))
            if sentence:
                parts.append(sentence)
        content = "\n\n".join(parts)
        if len(results) == 1 and results[0].name == "get_drift":
            then = labels.get(results[0].tool_call_id) or ""
            if then.startswith("promote:"):
                call = dict(calls.get(results[0].tool_call_id) or {"args": {}})
                return self._promote_after_drift(then, call["args"], str(results[0].content))
        if len(results) == 1 and results[0].name == "list_backups":
            then = labels.get(results[0].tool_call_id) or ""
            call = dict(calls.get(results[0].tool_call_id) or {"args": {}})
            chained = self._after_list(then, call["args"], str(results[0].content), s)
            if chained is not None:
                return chained
        if follow_up is not None:
            return self._ask(follow_up, follow_up.awaiting or "name", content)
        return AIMessage(content=content)

    def _after_list(
        self, then: str, args: dict[str, Any], content: str, s: Situation
    ) -> AIMessage | None:
        """The call a listing was made for: the restore of the newest backup (of the day
        named), or bringing back the one deleted site (deleted that day)."""
        what, _, day = then.partition(":")
        result = json.loads(content)
        if what not in ("restore", "undelete") or result.get("status") != "ok":
            return None
        backups = [b for b in result["data"]["backups"] if b["status"] == "succeeded"]
        tenant = {"tenant_id": args["tenant_id"]} if "tenant_id" in args else {}
        if what == "restore":
            chosen = [b for b in backups if not day or b["created_at"].startswith(day)]
            if not chosen:
                when = f" from {day}" if day else ""
                return AIMessage(content=f"{args.get('site')} has no backup{when} to restore.")
            restore = {**tenant, "site": args["site"], "backup": chosen[0]["id"]}
            return self._tools("", [("restore_site", restore, None)])
        deleted = sorted(
            {b["site"] for b in backups if (b.get("site_deleted_at") or "").startswith(day)}
        )
        if len(deleted) == 1:
            return self._tools("", [("undelete_site", {**tenant, "site": deleted[0]}, None)])
        if not deleted:
            return AIMessage(
                content="No deleted site with a kept backup matches; nothing to bring back."
            )
        plan = Plan("undelete_site", dict(tenant), "site")
        return self._ask(plan, "site", f"Which one should I bring back: {', '.join(deleted)}?")

    def _describe(
        self, name: str, args: dict[str, Any], result: dict[str, Any], label: str | None
    ) -> tuple[str, Plan | None]:
        status = result.get("status")
        data = result.get("data") or {}
        if status == "cancelled" and name in ENV_INTENTS:
            return f"Cancelled: {args.get('name', 'the variable')} was not changed.", None
        if status == "cancelled" and name in CANCELLED:
            return CANCELLED[name].format(site=args.get("site") or "the site"), None
        if status == "cancelled":
            target = args.get("site") or "it"
            return (
                f"Cancelled: {target} was not {NOT_DONE.get(name, 'deleted')}. Nothing changed.",
                None,
            )
        if name == "get_billing" and status in ("ok", "unavailable"):
            return answers.get_billing(args, result, label or "this period"), None
        if name == "bulk_sites" and data.get("summary"):
            return answers.bulk_sites(args, data), None
        if name == "billing_summary" and status == "unavailable":
            return f"I have no cost data yet: {result['error']}.", None
        if name == "billing_summary" and status == "ok":
            return answers.billing_summary(args, data, label or "this period"), None
        if status == "running":
            op = data.get("operation", {})
            return (
                f"{args.get('site', 'The site')} is still being worked on (operation "
                f"{op.get('id', '?')}, {op.get('status', 'running')}). Ask me again in a minute.",
                None,
            )
        if status != "ok":
            text = answers.failure(name, args, result)
            if name == "create_site" and result.get("http_status") in (409, 422):
                slots = {k: v for k, v in args.items() if k != "site"}
                return text + " Which other name should I use?", Plan("create_site", slots, "name")
            return text, None
        if name == "query_logs":
            return answers.query_logs(args, data, label or "the last hour"), None
        if name == "get_metrics":
            return answers.get_metrics(args, data, label or "the last hour"), None
        if name == "diagnose_site":
            return diagnosis.diagnose_site(args, data, label or "the last hour"), None
        describe = getattr(answers, name, None)
        if describe is None:
            return json.dumps(data)[:2000], None
        return describe(args, data), None


class SchemaReadingModel(BaseChatModel):
    """A local chat model that reads the bound tools' OpenAI schemas from its call's `tools`
    (the planner, and the tests' scripted model)."""

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tool schemas; the model reads them to know the caller's variant."""
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    reads_situation: ClassVar[bool] = True  # the graph passes it the caller's Situation

    @abstractmethod
    def _respond(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]], situation: Situation | None
    ) -> AIMessage:
        """The reply to `messages`, given the bound tools' schemas and the caller's situation."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._respond(
            messages, list(kwargs.get("tools") or []), kwargs.get(SITUATION_KWARG)
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])


class OfflinePlanner(SchemaReadingModel):
    """A deterministic, network-free chat model that plans tool calls from English."""

    @property
    def _llm_type(self) -> str:
        return "aipress-offline-planner"

    def _respond(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]], situation: Situation | None
    ) -> AIMessage:
        if situation is None:
            raise ValueError("the offline planner runs in the agent graph, which tells it who asks")
        return Planner().respond(messages, situation)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._respond(
            messages, list(kwargs.get("tools") or []), kwargs.get(SITUATION_KWARG)
        )
        pieces = re.findall(r"\S+\s*|\s+", str(message.content))
        for piece in pieces:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                additional_kwargs=message.additional_kwargs,
                tool_call_chunks=[
                    {
                        "name": c["name"],
                        "args": json.dumps(c["args"]),
                        "id": c["id"],
                        "index": i,
                        "type": "tool_call_chunk",
                    }
                    for i, c in enumerate(message.tool_calls)
                ],
                chunk_position="last",
            )
        )
