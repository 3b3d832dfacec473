"""English requests -> intent and slots: sites, e-mails, domains, tenants, times, filters."""

from __future__ import annotations

import calendar
import difflib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from controlplane.kernel import clock, names

WORD = r"[A-Za-z][A-Za-z0-9-]*"
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
DOMAIN = re.compile(r"\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\b", re.IGNORECASE)
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty-five": 45, "few": 3, "couple": 2,
}  # fmt: skip
UNITS = {"m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
         "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
         "d": "d", "day": "d", "days": "d", "week": "w", "weeks": "w"}  # fmt: skip
MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m} | {
    m.lower(): i for i, m in enumerate(calendar.month_abbr) if m
}
# Words that are never a site or tenant name, whatever position they take in a sentence.
STOPWORDS = frozenset(
    """a an the my our your their his her its this that these those it them me us i we you
    site sites website websites blog page wordpress new one another called named
    name call for on of in at to from about with and or but by as is are was were be been
    any all some each every last past previous today yesterday tomorrow week month year
    hour hours minute minutes day days now please thanks thank errors error logs log
    warnings warning problems issues tenant tenants customer customers what which who how
    why when where there here up down slow fast running status url link details info
    spend spent cost costs billing bill much many create make build delete remove destroy
    set setup start launch need want would like get show list tell give check see look
    have has had do does did can could should will so just also too very really ok okay yes
    no not mine email e-mail address domain custom use same login account admin
    administrator root superuser cancel stop keep sure go ahead back backup backups restore
    bring deleted undelete recover latest newest update updates upgrade plugin plugins theme
    themes core package packages version versions everything first instead then later again
    still time mistake anything something nothing""".split()  # noqa: SIM905
)
MONTH_WORDS = frozenset(MONTHS)

# Each intent's pattern (case ignored), tried in this order: the first that matches wins.
INTENTS: tuple[tuple[str, str], ...] = (
    ("secret", r"\b(passwords?|passwd|credentials?|secrets?|api[ -]?keys?|tokens?)\b"),
    ("billing",
        r"\b(spen[dt]|spending|costs?|costing|bill|billing|billed|charges?|charged|invoices?|"
        r"paid|pay|owe|expenses?|price)\b"),
    # Staging before restore, delete and create: "roll back the promotion", "make a staging
    # copy of shop", "what changed on production since the clone?".
    ("rollback_site",
        r"\b(roll\s*back|revert|undo)\b.*\b(promot\w*|push\w*|deploy\w*|go(ing)?\s+live|"
        r"staging)\b"),
    ("get_drift",
        r"\bdrift\b|\bchanged?\b.*\bsince\b.*\b(clon\w*|staging|cop(y|ied))\b|"
        r"\bchanged?\s+on\s+(production|prod|live)\b"),
    ("promote_site",
        r"\b(promote|push|deploy|publish|copy|sync)\b.*\bstaging\b.*\b(live|production|prod)\b|"
        r"\bpromot(e|ion)\b|\bstaging\b.*\bgo(es)?\s+live\b|\bpush\b.*\blive\b"),
    ("clone_site", r"\b(clone|duplicate)\b|\bstaging\s+(copy|site|version|clone)\b"),
    ("import_site", r"\b(import|migrate)\b"),
    # Before delete and create: "bring back the site I deleted", "restore my site".
    ("undelete_site",
        r"\bundelete\b|\bbring\s+(?:\S+\s+){0,4}?back\b|"
        r"\b(restore|recover|revive)\b.*\bdeleted\b|\bdeleted\b.*\b(back|restore|recover)\b"),
    ("restore_site", r"\b(restore|roll\s*back|revert)\b|\bput\b.*\bback\b"),
    # Before the one-site verbs: "update all my sites", "back up everything".
    ("bulk_sites",
        r"\b(update|upgrade|back\s*up|stop|start)\b.*\b(all\s+(of\s+)?(my\s+|the\s+|our\s+)?"
        r"(sites|websites)|every\s+(site|website)|everything)\b"),
    ("list_packages",
        r"\b(what|which|list|show|any|how\s+many|installed)\b.*\b(plugins?|themes?|packages?|"
        r"updates?|versions?)\b"),
    ("update_site", r"\b(update|upgrade)\b"),
    ("list_backups", r"\b(list|show|which|what|any|how\s+many)\b.*\bbackups?\b|^\s*backups\b"),
    ("backup_site", r"\bback\s+(?:\S+\s+)?up\b|\bbackup\b"),
    ("delete_site",
        r"\b(delete|remove|destroy|tear\s+down|take\s+down|get\s+rid\s+of|drop|wipe|erase|"
        r"decommission|kill)\b"),
    ("create_site",
        r"\b(create|make|build|launch|spin\s+up|set\s+up|setup|start|new|add|need|want|"
        r"give\s+me|like)\b.*\b(site|website|blog|wordpress|shop|store)\b|"
        r"^\s*(create|make|build|launch)\s+" + WORD + r"|"
        # Naming something new is asking for it: "... The name should be crumbs."
        r"\b(call\s+it|name\s+(it|should\s+be|will\s+be))\b|\b" + WORD + r"\s+(is\s+)?the\s+name\b"),
    # "why is my site slow?", "is shop broken?": evidence and a verdict (diagnose_site), not
    # bare figures; without that tool, metrics.
    ("diagnose",
        r"\bwhy\b.*\b(slow|slowly|sluggish|broken|down|failing|erroring|errors?|crash\w*|"
        r"not\s+(working|loading))\b|\b(slow|sluggish|broken|down)\b.*\bwhy\b|"
        r"\bis\s+(?:\S+\s+){0,3}?(broken|down)\b|\bdiagnos\w*|\bwhat'?s\s+wrong\b|"
        r"\btroubleshoot\w*"),
    ("get_metrics",
        r"\b(slow|slowly|fast|speed|latency|performance|perform|traffic|requests|"
        r"response\s+times?|load\s+times?|visits|visitors|metrics|busy|sluggish|lagging)\b"),
    ("query_logs",
        r"\b(logs?|errors?|warnings?|exceptions?|fatal|critical|[45]xx|[45]\d\d\s*s?|broken|"
        r"failing|fail(ed|ures?)?|crash(ed|es|ing)?|down|problems?|issues?|wrong|"
        r"not\s+found|access\s+log)\b"),
    ("list_tenants", r"\btenants\b|\bcustomers\b"),
    ("list_sites",
        r"\b(list|show|what|which|all|how\s+many|do\s+i\s+have|my)\b.*\bsites\b|"
        r"\b(list|show)\s+(me\s+)?(all|every|each)\s+(of\s+)?(my\s+|the\s+)?sites?\b|"
        r"^\s*sites\??\s*$"),
    ("get_site",
        r"\b(status|url|link|address|details?|info|information|how\s+is|how's|tell\s+me\s+"
        r"about|running|up|online|working|operations|history|deployments?|where\s+is)\b"),
)  # fmt: skip
INTENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (intent, re.compile(pattern, re.I)) for intent, pattern in INTENTS
)
GREETING = re.compile(
    r"^\s*(hi|hello|hey|help|what can you do|good (morning|afternoon|evening))\b", re.I
)
AFFIRM = re.compile(r"^\s*(y|yes|yeah|yep|sure|ok|okay|confirm|do it|go ahead|please do)\b", re.I)
DENY = re.compile(
    r"^\s*(n|no|nope|cancel|stop|don'?t|do not|never\s*mind|abort|not\s+(yet|now)|keep|leave)\b",
    re.I,
)
OWN_EMAIL = re.compile(
    r"\b(mine|my (own )?(e-?mail|address|login|account)|same (as|e-?mail)|use my|the one i "
    r"(signed|logged) in with)\b",
    re.I,
)
NO_DOMAIN = re.compile(r"\b(no|without|skip|none)\b.{0,20}\bdomain\b|^\s*(no|none|skip)\s*$", re.I)
CLAIMS_ADMIN = re.compile(
    r"\b(i\s*am|i'm|im|as|act as|pretend (to be|you are)|you are now)\s+(an?\s+|the\s+)?"
    r"(admin|administrator|root|superuser|super user|operator)\b|admin mode|"
    r"ignore (all |any |your |the |previous |prior )*(instructions|rules|prompts?)|"
    r"system prompt|developer mode",
    re.I,
)
PRONOUN = re.compile(r"\b(it|that one|that site|this site|the site|same site)\b", re.I)


@dataclass
class Window:
    """A log window: `since`/`until` as the logs API takes them, and words for answers."""

    since: str = "1h"
    until: str | None = None
    label: str = "the last hour"
    explicit: bool = False


@dataclass
class Period:
    """A billing period: inclusive dates and words for answers."""

    start: date
    end: date
    label: str
    explicit: bool = False


@dataclass
class Parsed:
    """Everything one message says."""

    text: str
    intents: list[str] = field(default_factory=list)
    site: str | None = None
    invalid_site: str | None = None
    email: str | None = None
    own_email: bool = False
    domain: str | None = None
    no_domain: bool = False
    title: str | None = None
    tenant: str | None = None
    window: Window = field(default_factory=Window)
    severity: str | None = None
    status: str | None = None
    period: Period | None = None
    group_by: str | None = None
    compare: bool = False
    affirm: bool = False
    deny: bool = False
    claims_admin: bool = False
    pronoun: bool = False
    greeting: bool = False
    sites: list[str] = field(default_factory=list)  # every site named, the first is `site`
    negated: list[str] = field(default_factory=list)  # changes the message says not to make
    unsupported: str | None = None  # an ask no tool can do ("rename a site")

    @property
    def intent(self) -> str | None:
        """The strongest intent, if any."""
        return self.intents[0] if self.intents else None


def intents_of(text: str) -> list[str]:
    """Intents in priority order (secret and billing outrank the verbs in their sentence)."""
    found = [name for name, pattern in INTENT_PATTERNS if pattern.search(text)]
    if "secret" in found and not re.search(
        r"\b(show|give|tell|what|reveal|send|print|display|read|get|dump|leak)\b", text, re.I
    ):
        found.remove("secret")
    if "create_site" in found and "delete_site" in found:
        # "remove the old site and make a new one" -> delete is the dangerous one: do it first
        found.remove("create_site")
    if "list_tenants" in found and "billing" in found:
        found.remove("list_tenants")
    return found


def candidate(word: str | None, *, avoid: set[str]) -> str | None:
    """A word as a site or tenant name, if it can be one."""
    if not word:
        return None
    value = word.strip("'\"`.,!?;:()").lower()
    if not value or value in STOPWORDS or value in MONTH_WORDS or value in avoid:
        return None
    if re.fullmatch(r"\d+[a-z]*", value) or value in UNITS or value in NUMBER_WORDS:
        return None
    return value


def _valid_site(value: str) -> bool:
    try:
        names.check_site_name(value)
    except ValueError:
        return False
    return True


SITE_PATTERNS = (
    re.compile(r"['\"`]([A-Za-z][A-Za-z0-9-]*)['\"`]"),
    re.compile(r"\b(?:call(?:ed)?|name(?:d)?)\s+(?:it\s+|the\s+site\s+)?(?:as\s+)?(" + WORD + ")", re.I),
    re.compile(r"\bname\s+(?:is|should\s+be|will\s+be|:)\s*(" + WORD + ")", re.I),
    re.compile(r"\b(?:site|website|blog)\s+(?:named\s+|called\s+)?(" + WORD + ")", re.I),
    re.compile(r"\b(" + WORD + r")\s+(?:site|website|blog)\b", re.I),
    re.compile(r"\b(?:deleted?|removed?|destroy|drop|wipe|erase|decommission|kill)\s+(?:the\s+|my\s+)?(" + WORD + ")", re.I),
    re.compile(r"\b(?:back\s+up|backup|restore|undelete|recover|bring\s+back|diagnose|import(?:\s+into)?)\s+(?:the\s+|my\s+)?(" + WORD + ")", re.I),
    re.compile(r"\b(?:update|upgrade)\s+(?:the\s+|my\s+)?(" + WORD + r")\b(?!\s+(?:plugin|theme|core))", re.I),
    re.compile(r"\b(?:back|bring)\s+(" + WORD + r")\s+(?:up|back)\b", re.I),
    re.compile(r"\b(" + WORD + r")\s+(?:is\s+)?the\s+name\b", re.I),
    re.compile(r"\b(?:is|was)\s+(" + WORD + r")\s+(?:so\s+|really\s+|very\s+|not\s+|still\s+)?(?:slow|down|up|running|ok|okay|working|broken|online|fast)", re.I),
    re.compile(r"\b(?:did|does|has|is|was)\s+(" + WORD + r")\s+(?:get|have|receive|serve|see|handle|load|run)\b", re.I),
    re.compile(r"\b(?:on|for|of|from|about|with|at|into|in)\s+(" + WORD + ")", re.I),
    re.compile(r"^\s*(" + WORD + r")(?:'s)?\s+(?:logs?|errors?|status|url|metrics|traffic)\b", re.I),
)  # fmt: skip


def site_name(text: str, *, avoid: set[str]) -> tuple[str | None, str | None]:
    """(a valid site name, or None; a name the user chose that is not valid, or None)."""
    invalid = None
    for pattern in SITE_PATTERNS:
        for match in pattern.finditer(text):
            value = candidate(match.group(1), avoid=avoid)
            if value is None:
                continue
            if _valid_site(value):
                return value, None
            invalid = invalid or value
    quoted = re.search(r"(?:call(?:ed)?|name(?:d)?)\s+(?:it\s+)?['\"]([^'\"]+)['\"]", text, re.I)
    if quoted and not _valid_site(quoted.group(1)):
        invalid = quoted.group(1)
    return None, invalid


def bare_name(text: str, *, avoid: set[str]) -> str | None:
    """A one-word answer ("crumbs", "crumbs please") to 'which site?'."""
    words = [w for w in re.findall(WORD, text) if candidate(w, avoid=avoid)]
    if len(words) == 1:
        value = words[0].lower()
        return value if _valid_site(value) else None
    return None


TENANT_PATTERNS = (
    re.compile(r"\b(?:tenant|customer|client|account)\s+(?:id\s+)?['\"]?(" + WORD + ")", re.I),
    re.compile(
        r"\b(" + WORD + r")'s\s+(?:sites?|costs?|bill|billing|spend(?:ing)?|usage|logs?|"
        r"errors?|tenant|account)\b",
        re.I,
    ),
    re.compile(r"\b(?:of|for|from|by)\s+(?:the\s+)?(" + WORD + r")\s+(?:tenant|customer)\b", re.I),
)


def tenant_ref(text: str) -> str | None:
    """A tenant the message names ("tenant acme", "acme's costs", "for the acme tenant")."""
    for pattern in TENANT_PATTERNS:
        for match in pattern.finditer(text):
            value = candidate(match.group(1), avoid=set())
            if value and names.DNS_LABEL.fullmatch(value):
                return value
    return None


def _amount(token: str) -> int | None:
    if token.isdigit():
        return int(token)
    return NUMBER_WORDS.get(token.lower())


def window(text: str, now: datetime) -> Window:
    """The log window a message asks for; the last hour when it names none."""
    lowered = text.lower()
    amount = r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|few|couple(?:\s+of)?)"
    unit = r"(minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?)"
    match = re.search(
        r"\b(?:last|past|previous|in\s+the\s+last|within)\s+" + amount + r"\s*" + unit + r"\b",
        lowered,
    )
    if match is None:
        match = re.search(r"\b" + amount + r"\s*" + unit + r"\s+ago\b", lowered)
    if match is None:
        match = re.search(r"\b(\d+)\s*(m|h|d)\b", lowered)
    if match:
        count = _amount(match.group(1).replace(" of", "").strip()) or 1
        code = UNITS[match.group(2)]
        if code == "w":
            count, code = count * 7, "d"
        plural = {"m": "minute", "h": "hour", "d": "day"}[code]
        label = f"the last {plural}" if count == 1 else f"the last {count} {plural}s"
        return Window(f"{count}{code}", None, label, explicit=True)
    match = re.search(r"\b(?:last|past|previous)\s+(minute|hour|day|week|half\s+hour)\b", lowered)
    if match:
        codes = {"minute": "1m", "hour": "1h", "day": "1d", "week": "7d"}
        code = codes.get(match.group(1), "30m")
        return Window(code, None, f"the last {match.group(1)}", explicit=True)
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if re.search(r"\byesterday\b", lowered):
        start = midnight - timedelta(days=1)
        label = f"yesterday ({start.date().isoformat()})"
        return Window(start.isoformat(), midnight.isoformat(), label, explicit=True)
    if re.search(r"\b(today|this morning|since midnight)\b", lowered):
        return Window(
            midnight.isoformat(), None, f"today ({midnight.date().isoformat()})", explicit=True
        )
    if re.search(r"\bthis week\b", lowered):
        start = midnight - timedelta(days=midnight.weekday())
        return Window(start.isoformat(), None, "this week", explicit=True)
    return Window()


def filters(text: str) -> tuple[str | None, str | None]:
    """(severity, HTTP status) a log question asks for."""
    lowered = text.lower()
    match = re.search(r"\b([45])(xx|\d\d)\s*s?\b", lowered)
    if match:
        return None, match.group(1) + match.group(2)
    if re.search(r"\bserver errors?\b", lowered):
        return None, "5xx"
    if re.search(r"\bclient errors?\b", lowered):
        return None, "4xx"
    if re.search(r"\bnot found\b|\bbroken links?\b|\bmissing pages?\b", lowered):
        return None, "404"
    if re.search(r"\b(critical|fatal)\b", lowered):
        return "critical", None
    if re.search(r"\bwarnings?\b", lowered):
        return "warning", None
    if re.search(
        r"\b(errors?|exceptions?|fail(ed|ing|ures?)?|crash\w*|broken|problems?|issues?|wrong|down)\b",
        lowered,
    ):
        return "error", None
    return None, None


def _month_bounds(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def period(text: str, today: date) -> Period:
    """The billing period a message asks for; this month when it names none."""
    lowered = text.lower()
    match = re.search(
        r"\b(?:last|past|previous)\s+(\d+|" + "|".join(NUMBER_WORDS) + r")\s+days\b", lowered
    )
    if match:
        count = _amount(match.group(1)) or 1
        return Period(today - timedelta(days=count - 1), today, f"the last {count} days", True)
    if re.search(r"\b(last|previous|past)\s+month\b", lowered):
        first = today.replace(day=1) - timedelta(days=1)
        start, end = _month_bounds(first.year, first.month)
        return Period(start, end, calendar.month_name[first.month] + f" {first.year}", True)
    if re.search(r"\byesterday\b", lowered):
        day = today - timedelta(days=1)
        return Period(day, day, "yesterday", True)
    if re.search(r"\btoday\b", lowered):
        return Period(today, today, "today", True)
    if re.search(r"\bthis week\b", lowered):
        return Period(today - timedelta(days=today.weekday()), today, "this week", True)
    if re.search(r"\blast week\b", lowered):
        monday = today - timedelta(days=today.weekday() + 7)
        return Period(monday, monday + timedelta(days=6), "last week", True)
    if re.search(r"\bthis year\b|\byear to date\b|\bytd\b", lowered):
        return Period(date(today.year, 1, 1), today, f"{today.year} so far", True)
    for word in re.findall(r"[a-z]+", lowered):
        month = MONTHS.get(word)
        if month is None or (
            word == "may" and not re.search(r"\b(in|of|for|during)\s+may\b", lowered)
        ):
            continue
        year_match = re.search(word + r"\s+(\d{4})\b", lowered)
        year = int(year_match.group(1)) if year_match else today.year
        if not year_match and month > today.month:
            year -= 1  # "October" in November means the October just gone
        start, end = _month_bounds(year, month)
        return Period(start, min(end, today), f"{calendar.month_name[month]} {year}", True)
    start = today.replace(day=1)
    return Period(start, today, "this month", False)


def group_by(text: str) -> str | None:
    """day | service | site, when the message asks for a split."""
    lowered = text.lower()
    if re.search(r"\b(by|per|each)\s+(day|date)\b|\bdaily\b|\bday by day\b", lowered):
        return "day"
    if re.search(r"\b(by|per|each)\s+(service|product|sku)\b|\bbreakdown\b", lowered):
        return "service"
    if re.search(r"\b(by|per|each)\s+site\b|\bwhich site\b", lowered):
        return "site"
    return None


def title_of(text: str) -> str | None:
    """An explicit title ("titled 'Crumbs Bakery'")."""
    match = re.search(r"\btitled?\s*(?::|is)?\s*['\"]([^'\"]{1,200})['\"]", text, re.I)
    if match:
        return match.group(1).strip()
    match = re.search(r"\btitled?\s*(?::|is)?\s+([A-Z][\w' -]{0,60}?)(?:[.,;!?]|$)", text)
    return match.group(1).strip() if match else None


ENV_VAR = r"(?P<name>[A-Z_][A-Z0-9_]{1,63})"  # as typed: upper case, so no ordinary word
ENV_WORDS = r"(env(ironment)?\s*(vars?|variables?|settings)|\benv\b)"
ENV_LIST = re.compile(r"\b(list|show|what|which|see)\b.*" + ENV_WORDS, re.I)
ENV_UNSET = re.compile(r"\b(?i:(unset|remove|delete|drop|clear)\s+(the\s+)?(env(ironment)?\s+"
                       r"var(iable)?\s+)?)" + ENV_VAR + r"\b")  # fmt: skip
ENV_SET = re.compile(r"\b(?i:(set|store|save|add|put|change)\s+(the\s+|my\s+|a\s+)?(secret\s+|"
                     r"env(ironment)?\s+var(iable)?\s+)?)" + ENV_VAR + r"\b"
                     r"(\s+(to|=|as)\s+(?P<value>[^\s'\"]+|'[^']*'|\"[^\"]*\"))?")  # fmt: skip
SECRET_WORDS = re.compile(r"\b(secrets?|secretly|api[ -]?keys?|tokens?|passwords?)\b", re.I)


def env_request(text: str) -> tuple[str, dict[str, Any]] | None:
    """An env var request: the tool and its arguments. A secret never carries its value
    (the confirmation card asks for it), even one typed into the message."""
    if match := ENV_UNSET.search(text):
        return "unset_env", {"name": match.group("name")}
    if match := ENV_SET.search(text):
        name, value = match.group("name"), match.group("value")
        if SECRET_WORDS.search(text.replace(name, " ")):
            typed = bool(re.search(r"(\bto\s+|[:=]\s*)\S", text))  # a value came along
            return "set_env", {"name": name, "secret": True, "typed": typed}
        return "set_env", {"name": name, "value": value.strip("'\"") if value else None}
    if ENV_LIST.search(text):
        return "list_env", {}
    return None


# Intent words a small typo should not hide ("delte" -> delete, "craete" -> create).
INTENT_WORDS = (
    "delete", "remove", "destroy", "create", "build", "launch", "backup", "restore", "update",
    "upgrade", "clone", "duplicate", "import", "migrate", "promote", "rollback", "undelete",
    "status", "errors", "logs", "metrics", "traffic", "billing", "costs", "spend", "website",
    "sites", "list", "show", "slow", "performance", "backups", "plugins", "themes", "rename",
)  # fmt: skip
# Changes a message can say not to make; questions are never "negated".
CHANGES = frozenset({"delete_site", "create_site", "backup_site", "restore_site", "update_site",
                     "bulk_sites", "clone_site", "promote_site", "rollback_site", "import_site",
                     "undelete_site"})  # fmt: skip
CLAUSE = re.compile(r"[.;!?\n]+|,|\bbut\b|\binstead\b|\brather\b", re.I)
NEGATION = re.compile(
    r"\b(don'?t|do\s+not|never|not|no\s+need\s+to|rather\s+not|won'?t|shouldn'?t|wouldn'?t|"
    r"hold\s+off\s+on)\b(?!\s+(found|working|loading|responding|sure|load|work))",
    re.I,
)
UNSUPPORTED = (
    ("rename a site", re.compile(r"\brenam\w*\b|\bchange\s+(the\s+)?(site'?s?\s+)?name\b", re.I)),
    ("move a site to another tenant",
     re.compile(r"\b(move|transfer|reassign|hand\s+over)\b.*\b(tenants?|accounts?|customers?|"
                r"owners?|clients?)\b", re.I)),
)  # fmt: skip


# A value the message gives is the user's own, typos and all: what is quoted, and the word
# a name or title starts with ("a site called slows", "titled Resotre Cafe").
QUOTED = re.compile(r"(?<!\w)(['\"])[^'\"]+\1(?!\w)")
NAMING = re.compile(
    r"\b(called|named|titled?|name\s+(is|should\s+be|will\s+be)|call\s+it)\s*[:=]?\s*$", re.I
)


def fix_typos(text: str) -> str:
    """The text with near-misses of intent words corrected (upper-case names, quoted values
    and the name or title a message gives are left)."""
    quoted = [m.span() for m in QUOTED.finditer(text)]

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        low = word.lower()
        if len(low) < 5 or word.isupper() or low in STOPWORDS or low in INTENT_WORDS:
            return word
        before = text[max(0, match.start() - 40) : match.start()]
        if any(a <= match.start() < b for a, b in quoted) or NAMING.search(before):
            return word
        close = difflib.get_close_matches(low, INTENT_WORDS, n=1, cutoff=0.8)
        return close[0] if close and close[0][0] == low[0] else word

    return re.sub(r"(?<![\w@.-])[A-Za-z]+(?![\w@-])", fix, text)


def clauses(text: str) -> tuple[str, str]:
    """(the clauses that ask for something, the clauses that say not to), each joined."""
    parts = [part for part in CLAUSE.split(text) if part and part.strip()]
    said = [part for part in parts if not NEGATION.search(part)]
    denied = [part for part in parts if NEGATION.search(part)]
    return " . ".join(said), " . ".join(denied)


def unsupported_ask(text: str) -> str | None:
    """What a message asks that no tool does ("rename a site"), if it does."""
    return next((what for what, pattern in UNSUPPORTED if pattern.search(text)), None)


def more_sites(text: str, first: str, *, avoid: set[str]) -> list[str]:
    """The sites named after the first one ("crumbs, shop and blog")."""
    chain = re.search(
        r"\b" + re.escape(first) + r"\b((?:\s*(?:,|\band\b|&)\s*(?:the\s+|my\s+)?" + WORD + r")+)",
        text,
        re.I,
    )
    found: list[str] = []
    for word in re.findall(WORD, chain.group(1)) if chain else []:
        if word.lower() in ("and", "the", "my"):
            continue
        value = candidate(word, avoid=avoid)
        if value is None or not _valid_site(value):
            break
        if value != first and value not in found:
            found.append(value)
    return found


def parse(text: str, *, now: datetime | None = None, awaiting: str | None = None) -> Parsed:
    """Read one message."""
    now = now or clock.now()
    typed, text = text, fix_typos(text)
    said, denied = clauses(text)
    email_match = EMAIL.search(text)
    email = email_match.group(0) if email_match else None
    without_email = URL.sub(" ", EMAIL.sub(" ", text))
    domain_match = DOMAIN.search(without_email)
    domain = domain_match.group(0).lower() if domain_match else None
    without_addresses = DOMAIN.sub(" ", without_email)
    tenant = tenant_ref(without_addresses)
    avoid = {tenant} if tenant else set()
    site, invalid = (None, None)
    if denied:  # "don't delete crumbs, delete shop instead": the site asked for comes first
        site, invalid = site_name(DOMAIN.sub(" ", EMAIL.sub(" ", said)), avoid=avoid)
    if site is None:
        site, invalid = site_name(without_addresses, avoid=avoid)
    if site is None and awaiting in ("name", "site"):
        site = bare_name(without_addresses, avoid=avoid)
    severity, status = filters(text)
    read = without_addresses if email or domain else text
    intents = intents_of(read)
    negated: list[str] = []
    if denied:
        asked = intents_of(DOMAIN.sub(" ", EMAIL.sub(" ", said)))
        negated = [i for i in intents_of(denied) if i in CHANGES and i not in asked]
        intents = asked  # what a negated clause names is not asked for, questions neither
    parsed = Parsed(
        text=text,
        intents=intents,
        negated=negated,
        unsupported=unsupported_ask(said),
        sites=[site, *more_sites(without_addresses, site, avoid=avoid)] if site else [],
        site=site,
        invalid_site=invalid,
        email=email,
        own_email=bool(OWN_EMAIL.search(text)),
        domain=domain,
        no_domain=bool(NO_DOMAIN.search(text)),
        title=title_of(typed),  # as typed: a title is the user's words
        tenant=tenant,
        window=window(text, now),
        severity=severity,
        status=status,
        period=period(text, now.date()),
        group_by=group_by(text),
        compare=bool(re.search(r"\b(compare[ds]?|comparison|versus|vs\.?|against)\b", text, re.I)),
        affirm=bool(AFFIRM.search(text)),
        deny=bool(DENY.search(text)),
        claims_admin=bool(CLAIMS_ADMIN.search(text)),
        pronoun=bool(PRONOUN.search(text)),
        greeting=bool(GREETING.search(text)),
    )
    return parsed


# -- staging, promotion and import ----------------------------------------------------------

# Words a staging request uses that are never the site meant ("on production", "of staging").
STAGING_WORDS = frozenset(
    """staging production prod live promotion promote push copy clone import export pages
    posts comments orders users database files uploads media content settings only just
    everything force overwrite""".split()  # noqa: SIM905
)
CLONE = re.compile(
    r"\b(?:clone|copy|duplicate)\s+(?:the\s+|my\s+)?(?:site\s+)?(?P<source>" + WORD + r")"
    r"(?:\s+(?:site|website))?\s+(?:to|into|as)\s+(?:a\s+|the\s+)?(?:new\s+)?(?:staging\s+)?"
    r"(?:site\s+)?(?:called\s+|named\s+)?(?P<target>" + WORD + ")",
    re.I,
)
CLONE_SOURCE = re.compile(
    r"\b(?:clone|duplicate|staging\s+(?:copy|site|version|clone)\s+(?:of|for))\s+(?:the\s+|my\s+)?"
    r"(?:site\s+)?(?P<source>" + WORD + ")",
    re.I,
)
STAGING_NAME = re.compile(r"\b([a-z0-9][a-z0-9-]*-staging|staging-[a-z0-9-]+)\b", re.I)
URL = re.compile(r"\bhttps?://[^\s/?#'\"]+(?::\d+)?(?:/[^\s?#'\"]*)?", re.I)
# What "only pages" and the like leave in a promotion: the table words of tools/staging.py.
TABLE_GROUPS = (
    ("posts and pages", re.compile(r"\b(pages?|posts?|content)\b", re.I)),
    ("comments", re.compile(r"\bcomments?\b", re.I)),
    ("users", re.compile(r"\busers?\b", re.I)),
    ("settings", re.compile(r"\b(settings|options)\b", re.I)),
    ("categories and tags", re.compile(r"\b(categor(y|ies)|tags?|terms?)\b", re.I)),
    ("orders", re.compile(r"\borders?\b", re.I)),
)


@dataclass
class StagingRequest:
    """What a clone, drift, promote, rollback or import request says besides its intent."""

    source: str | None = None  # the site cloned
    target: str | None = None  # the new staging site's name
    site: str | None = None  # a staging (or production) site named
    basic_auth: bool = False
    scope: str = "all"
    groups: list[str] = field(default_factory=list)  # table words ("posts and pages")
    force: bool = False
    old_url: str | None = None
    admin: str | None = None


def _a_site(word: str | None) -> str | None:
    value = candidate(word, avoid=set(STAGING_WORDS))
    return value if value and _valid_site(value) else None


def staging_request(text: str) -> StagingRequest:
    """Read the parts of a staging request: 'clone shop to shop-staging with basic auth',
    'push staging live, only pages', 'import from https://old.example.com'."""
    found = StagingRequest()
    if match := CLONE.search(text):
        found.source, found.target = _a_site(match["source"]), _a_site(match["target"])
    elif match := CLONE_SOURCE.search(text):
        found.source = _a_site(match["source"])
    if match := STAGING_NAME.search(text):
        found.site = _a_site(match.group(1))
    found.basic_auth = bool(re.search(r"\bbasic[- ]?auth\b|\bpassword[- ]protect", text, re.I))
    restricted = re.search(r"\b(only|just|nothing\s+but)\b", text, re.I)
    if restricted:
        tail = text[restricted.start() :]
        if re.search(r"\b(files|uploads|media|wp-content|themes?|plugins?)\b", tail, re.I):
            found.scope = "files"
        else:
            found.groups = [words for words, pattern in TABLE_GROUPS if pattern.search(tail)]
            if found.groups or re.search(r"\bdatabase\b", tail, re.I):
                found.scope = "database"
    found.force = bool(re.search(r"\b(force|overwrite|anyway|regardless)\b", text, re.I))
    if match := URL.search(text):
        found.old_url = match.group(0).rstrip(".,;:!)")
    if re.search(r"\breset\b.*\badmin\b|\badmin\b.*\breset\b", text, re.I):
        found.admin = "reset"
    elif re.search(r"\bkeep\b.*\badmin\b|\badmin\b.*\bkeep\b", text, re.I):
        found.admin = "keep"
    return found


# -- updates ----------------------------------------------------------------------------------

PACKAGE = re.compile(
    r"\b(?:the\s+)?(?P<slug>[a-z0-9][a-z0-9._-]*)\s+(?P<kind>plugin|theme)\b", re.I
)
# "update wordpress on shop" is core; "update my wordpress site" is everything.
CORE = re.compile(r"\bcore\b|\bwordpress\b(?!\s+(?:sites?|websites?|blogs?))", re.I)
BULK_ACTIONS = (("update", r"\b(update|upgrade)\b"), ("backup", r"\bback\s*up\b"),
                ("stop", r"\bstop\b"), ("start", r"\bstart\b"))  # fmt: skip


@dataclass
class UpdateRequest:
    """What an update names: plugins and themes by slug, and whether core (none: all)."""

    plugins: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    core: bool = False


def update_request(text: str) -> UpdateRequest:
    """Read 'update the demo plugin on shop', 'upgrade wordpress core on blog'."""
    found = UpdateRequest()
    for match in PACKAGE.finditer(text):
        slug = match.group("slug").lower()
        if slug in ("the", "a", "my", "this", "that"):
            continue
        (found.plugins if match.group("kind").lower() == "plugin" else found.themes).append(slug)
    found.core = bool(CORE.search(text))
    return found


def bulk_action(text: str) -> str | None:
    """The action of 'update all my sites', 'back up everything'."""
    return next((action for action, pattern in BULK_ACTIONS if re.search(pattern, text, re.I)),
                None)  # fmt: skip
