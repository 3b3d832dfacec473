"""Cron: a site's due events run by php-cli as the site's user, with its pool's settings.

Why php-cli and not a request to /wp-cron.php through nginx: under PHP-FPM wp-cron.php
answers before it runs anything (`fastcgi_finish_request`), so the request's status says
nothing about the events, and a bound on concurrent requests would not bound the PHP work.
Run here, the control plane sees how many events ran and whether one failed, and
`cron_concurrency` bounds the real work; the visitors' workers (`pm.max_children`) are not
taken. The run keeps the site's isolation: its user (`runuser`), and the php_admin values
(open_basedir, disable_functions, limits) and env of its own pool file, read as root.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from controlplane.cron import CronResult
from controlplane.engine.provider import SiteContext
from controlplane.providers.local.base import LocalStep
from controlplane.stack.process import CLEAN_ENV, StackError

RUNNER_SOURCE = (Path(__file__).parent / "wp_cron.php").read_text()
# Last on every php-cli command line that runs a site's code, whatever its pool file says:
# php-cli allows FFI by default (`ffi.enable=preload`), and FFI calls C with no regard for
# disable_functions or open_basedir.
CLI_LOCKDOWN = ("-d", "ffi.enable=0")


def ini_unquote(value: str) -> str:
    """The value of a pool line, as runtime.ini_quote wrote it (or bare)."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        out, chars = [], iter(value[1:-1])
        for char in chars:
            out.append(next(chars, "") if char == "\\" else char)
        return "".join(out)
    return value


def pool_settings(pool_file: Path) -> tuple[list[str], dict[str, str]]:
    """The pool's php_admin values as `-d` flags and its env, for php-cli."""
    flags: list[str] = []
    env: dict[str, str] = {}
    for line in pool_file.read_text().splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.endswith("]"):
            continue
        kind, _, name = key[:-1].partition("[")
        if kind in ("php_admin_value", "php_admin_flag", "php_value", "php_flag"):
            flags += ["-d", f"{name}={value.strip()}"]
        elif kind == "env":
            env[ini_unquote(name)] = ini_unquote(value)  # runtime.ini_key quotes the name
    return flags, env


class LocalCron(LocalStep):
    """Runs a site's due WP-Cron events once."""

    def run_due(self, ctx: SiteContext) -> CronResult:
        """php-cli as the site's user; the summary comes back as JSON on stdout."""
        names = self.names(ctx)
        pool_file = self.stack.phpfpm.pool_file(names.system_user)
        if not pool_file.exists():
            return CronResult(ok=False, detail="the site has no PHP-FPM pool (not serving)")
        flags, env = pool_settings(pool_file)
        timeout = self.settings.cron_timeout_seconds
        # Found on our PATH: the pool's own PATH (the child's) has no sbin.
        runuser = shutil.which("runuser", path=CLEAN_ENV["PATH"]) or "/usr/sbin/runuser"
        args = [runuser, "-u", names.system_user, "--", "php", *flags, *CLI_LOCKDOWN,
                "-d", f"max_execution_time={int(timeout)}",
                "--", str(names.root / "htdocs"), self.preview_url(ctx)]  # fmt: skip
        try:
            # The tenant's env (secrets too) travels in the environment, as the pool gives it,
            # never in argv where `ps` would show it.
            done = subprocess.run(
                args, input=RUNNER_SOURCE, capture_output=True, text=True, timeout=timeout,
                check=False, env={**CLEAN_ENV, **env}, cwd="/",
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return CronResult(ok=False, detail=f"the due events ran longer than {timeout:.0f} s")
        lines = done.stdout.strip().splitlines()
        try:
            summary = json.loads(lines[-1]) if lines else {}
        except ValueError:
            summary = {}
        if not isinstance(summary, dict) or "due" not in summary:
            tail = (done.stderr or done.stdout).strip()[-300:]
            raise StackError(f"the cron runner printed no summary (exit {done.returncode}): {tail}")
        due, left = summary.get("due"), summary.get("left")
        ran = max(0, due - left) if isinstance(due, int) and isinstance(left, int) else None
        if summary.get("error"):
            return CronResult(ok=False, detail=f"PHP fatal error: {summary['error']}"[:500],
                              events_run=ran)  # fmt: skip
        if done.returncode != 0:
            return CronResult(ok=False, detail=f"php exited {done.returncode}", events_run=ran)
        detail = f"{due} due, {ran} run" if ran is not None else "no summary of events"
        return CronResult(ok=True, detail=detail, events_run=ran)
