"""provision.py's `--baseline` phase: a bare WordPress on a plain PHP-FPM pool, side by side.

The bare site is a copy of a platform site's WordPress files (same core, same theme, same
database, the same wp-config.php but for its URL) without the platform's must-use plugins,
served by its own php-fpm master (the system php.ini, no -d flags, one `ondemand` pool as
www-data with no open_basedir and no disable_functions) behind its own minimal nginx. Its
uncached homepage and the platform site's (a query string bypasses the page cache) are
fetched one request at a time, alternating which goes first each round, so both see the same
machine load.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import harness
from harness import fmt, stats

Rows = list[tuple[str, str]]

POOL = """[global]
pid = {base}/php-fpm.pid
error_log = {base}/php-fpm.log
daemonize = no

[bare]
user = www-data
group = www-data
listen = {base}/php-fpm.sock
listen.owner = www-data
listen.group = www-data
pm = ondemand
pm.max_children = {max_children}
pm.process_idle_timeout = 20s
pm.max_requests = 500
"""

NGINX = """daemon off;
user www-data;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {base}/tmp/body;
    fastcgi_temp_path {base}/tmp/fastcgi;
    proxy_temp_path {base}/tmp/proxy;
    uwsgi_temp_path {base}/tmp/uwsgi;
    scgi_temp_path {base}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {base}/htdocs;
        index index.php;
        location / {{ try_files $uri $uri/ /index.php?$args; }}
        location ~ \\.php$ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param HTTP_HOST $host:$server_port;
            fastcgi_pass unix:{base}/php-fpm.sock;
        }}
    }}
}}
"""

URL_DEFINE = re.compile(r"define\('(WP_HOME|WP_SITEURL)',\s*'[^']*'\);")


def bare_config(site_config: str, url: str) -> str:
    """The platform site's wp-config.php with the bare site's URL for WP_HOME/WP_SITEURL."""
    replaced, count = URL_DEFINE.subn(lambda m: f"define('{m.group(1)}', '{url}');", site_config)
    if count != 2:
        raise RuntimeError("wp-config.php does not define WP_HOME and WP_SITEURL as expected")
    return replaced


class BareWordPress:
    """The bare site's files, php-fpm master and nginx, started and stopped together."""

    def __init__(self, base: Path, site_htdocs: Path, port: int, max_children: int) -> None:
        self.base = base
        self.site_htdocs = site_htdocs
        self.port = port
        self.max_children = max_children
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The bare site's address."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Copy the files (no mu-plugins), write both configs and start both servers."""
        from controlplane.stack.phpfpm import php_fpm_binary

        self.base.mkdir(mode=0o755)
        (self.base / "tmp").mkdir()
        htdocs = self.base / "htdocs"
        shutil.copytree(
            self.site_htdocs, htdocs, symlinks=True, ignore=shutil.ignore_patterns("mu-plugins")
        )
        config = htdocs / "wp-config.php"
        config.write_text(bare_config(config.read_text(), self.url))
        subprocess.run(["chown", "-R", "www-data:www-data", str(htdocs)], check=True)
        (self.base / "php-fpm.conf").write_text(
            POOL.format(base=self.base, max_children=self.max_children)
        )
        (self.base / "nginx.conf").write_text(NGINX.format(base=self.base, port=self.port))
        for command in (
            [php_fpm_binary(), "--fpm-config", str(self.base / "php-fpm.conf"), "-F"],
            ["nginx", "-c", str(self.base / "nginx.conf"), "-p", str(self.base)],
        ):
            self.processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + 15
        while not (self.base / "php-fpm.sock").exists() or harness.port_free(self.port):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"the bare WordPress did not start (logs in {self.base})")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop both servers and remove the copy."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.base, ignore_errors=True)


def comparison(platform_ms: list[float], bare_ms: list[float]) -> dict[str, Any]:
    """Both sides' latency stats (ms) and the platform's p50 and p95 over the bare site's."""
    platform, bare = stats(platform_ms, 2), stats(bare_ms, 2)
    out: dict[str, Any] = {"platform_ms": platform, "bare_ms": bare}
    for key in ("p50", "p95"):
        if platform.get(key) and bare.get(key):
            out[f"ratio_{key}"] = round(platform[key] / bare[key], 3)
    return out


async def interleaved(
    bench: Any, name: str, bare_url: str, rounds: int, warmup: int
) -> dict[str, Any]:
    """Uncached homepage latency of the platform site and the bare one, alternating."""
    import httpx

    samples: dict[str, list[float]] = {"platform": [], "bare": []}
    statuses: dict[str, dict[str, int]] = {"platform": {}, "bare": {}}
    async with httpx.AsyncClient(base_url=bare_url, timeout=30.0, trust_env=False) as bare:

        async def fetch(side: str, record: bool) -> None:
            query = f"/?nocache={time.perf_counter_ns()}"
            t0 = time.perf_counter()
            if side == "platform":
                response = await bench.get_home(name, query)
                label = f"{response.status_code} {response.headers.get('x-cache')}"
            else:
                response = await bare.get(query)
                label = str(response.status_code)
            elapsed = (time.perf_counter() - t0) * 1000
            if record:
                statuses[side][label] = statuses[side].get(label, 0) + 1
                if response.status_code == 200:
                    samples[side].append(elapsed)

        for i in range(warmup + rounds):
            order = ("platform", "bare") if i % 2 == 0 else ("bare", "platform")
            for side in order:
                await fetch(side, record=i >= warmup)
    result = comparison(samples["platform"], samples["bare"])
    result.update({"rounds": rounds, "warmup_rounds": warmup, "status": statuses})
    return result


async def phase_baseline(
    args: Any, bench: Any, stack: Any, site_root: Path, max_children: int
) -> dict[str, Any]:
    """The bare WordPress beside the platform's first site, their uncached pages compared."""
    name = bench.created[0]
    print(
        f"[baseline] bare WordPress (plain PHP-FPM pool) beside {name}, "
        f"{args.baseline_rounds} interleaved rounds ...",
        flush=True,
    )
    bare = BareWordPress(
        stack.home / "bench-baseline", site_root / "htdocs", harness.free_port(), max_children
    )
    meter = harness.CpuMeter()
    try:
        await asyncio.to_thread(bare.start)
        result = await interleaved(bench, name, bare.url, args.baseline_rounds, 10)
    finally:
        await asyncio.to_thread(bare.stop)
    result["site"] = name
    result["cpu"] = meter.result()
    print(
        f"      platform p50 {fmt(result['platform_ms'].get('p50'), ' ms')}, bare p50 "
        f"{fmt(result['bare_ms'].get('p50'), ' ms')}, ratio {result.get('ratio_p50')}",
        flush=True,
    )
    return result


def baseline_rows(base: dict[str, Any]) -> Rows:
    """The baseline comparison's rows."""
    platform, bare = base["platform_ms"], base["bare_ms"]
    cpu = base.get("cpu") or {}
    return [
        (
            f"uncached homepage, platform site {base['site']}, {base['rounds']} rounds p50 / p95",
            f"{fmt(platform.get('p50'), ' ms')} / {fmt(platform.get('p95'), ' ms')}  "
            f"status {base['status']['platform']}",
        ),
        (
            "  bare WordPress, plain PHP-FPM pool, interleaved p50 / p95",
            f"{fmt(bare.get('p50'), ' ms')} / {fmt(bare.get('p95'), ' ms')}  "
            f"status {base['status']['bare']}",
        ),
        (
            "  platform / bare, p50; p95",
            f"{fmt(base.get('ratio_p50'), 'x', 3)}; {fmt(base.get('ratio_p95'), 'x', 3)}"
            f"  [machine CPU busy {fmt(cpu.get('machine_cpu_busy_pct'), '%', 0)}, "
            f"load {cpu.get('loadavg_1m_at_end')}]",
        ),
    ]
