"""The site fence: what a site's PHP may connect to on this machine, by nftables owner match.

A site's code runs as the site's system user, and it is hostile by assumption (a plugin).
Each stack keeps one `inet` table whose output chain sends every packet from a socket of
one of its site users (a set of uids, kept as sites come and go and rebuilt from the
system's users at start-up) through a chain that accepts, on this machine, only TCP to the
stack's own nginx site port (WordPress's loopback requests to itself) and its MariaDB port
(with the site's own credentials), and rejects every other local port (control plane, chat
service, other stacks, anything that listens; the host's non-loopback addresses also go
through `lo`) and the metadata-style addresses. The rest of the internet stays open here.

Per stack, not one shared table: several stacks run on one machine in the tests, and a
table that allowed every stack's ports would let one stack's sites reach another's.
Unix sockets are not filtered here; file modes keep site users off them (see local.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import pwd
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.kernel.logs import get_logger
from controlplane.stack.process import CLEAN_ENV, StackError

log = get_logger("aipress.stack.firewall")
TABLE_PREFIX = "aipress_"
METADATA_V4 = ("169.254.0.0/16", "100.100.100.200")  # GCP/AWS/Azure link-local, Alibaba
METADATA_V6 = ("fd00:ec2::254",)  # AWS IPv6
_SAFE_COMMENT = re.compile(r"^[A-Za-z0-9_./+-]{1,120}$")
# One lock per machine and process: set changes and table rebuilds must not interleave.
_LOCK = threading.Lock()


class FirewallUnavailable(StackError):
    """nftables cannot be used here, so no site may be created."""


def loopback_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """Loopback name servers (systemd-resolved's 127.0.0.53 and kin): sites still resolve."""
    found: list[str] = []
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ipaddress.ip_address(parts[1].split("%")[0])
            except ValueError:
                continue
            if address.is_loopback:
                found.append(str(address))
    return found


@dataclass
class SiteFirewall:
    """The nftables table of one stack (named after a hash of its home)."""

    home: Path
    sites_dir: Path
    site_port: int
    site_listen: str
    mariadb_port: int
    nft: str = "nft"
    _installed: bool = field(default=False, repr=False)

    @property
    def table(self) -> str:
        """The table's name: aipress_ and 12 hex digits of the home's path."""
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]
        return f"{TABLE_PREFIX}{digest}"

    def site_uids(self) -> set[int]:
        """Uids of this stack's site users: system users whose home is under its sites dir."""
        roots = (f"{self.sites_dir}/", f"{self.sites_dir.resolve()}/")
        return {p.pw_uid for p in pwd.getpwall() if p.pw_dir.startswith(roots)}

    def _nft(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [self.nft, *args], input=input_text, capture_output=True, text=True,
                timeout=30, check=False, env=CLEAN_ENV,
            )  # fmt: skip
        except OSError as exc:
            raise FirewallUnavailable(self._unavailable(str(exc))) from exc

    def _unavailable(self, why: str) -> str:
        return (
            f"site isolation needs nftables and it cannot be used here ({why.strip()[-300:]}); "
            "refusing to create sites whose PHP could reach the control plane. Install it "
            "(`scripts/install-debs.sh` installs the nftables package) and run as root on a "
            "kernel with nf_tables"
        )

    def _rules(self, uids: set[int]) -> str:
        elements = f"elements = {{ {', '.join(map(str, sorted(uids)))} }}" if uids else ""
        comment = f'comment "{self.home}"' if _SAFE_COMMENT.match(str(self.home)) else ""
        site_dst = self._site_destination()
        resolvers = loopback_resolvers()
        dns = "\n        ".join(
            f"oif lo {family} daddr {{ {', '.join(found)} }} "
            "meta l4proto { tcp, udp } th dport 53 accept"
            for family, found in (
                ("ip", [r for r in resolvers if ":" not in r]),
                ("ip6", [r for r in resolvers if ":" in r]),
            )
            if found
        )
        return f"""table inet {self.table} {{
    {comment}
    set site_uids {{
        typeof meta skuid
        {elements}
    }}
    chain output {{
        type filter hook output priority filter; policy accept;
        meta skuid @site_uids jump site
    }}
    chain site {{
        ip daddr {{ {", ".join(METADATA_V4)} }} goto deny
        ip6 daddr {{ {", ".join(METADATA_V6)} }} goto deny
        oif lo {site_dst}tcp dport {self.site_port} accept
        oif lo ip daddr 127.0.0.1 tcp dport {self.mariadb_port} accept
        {dns}
        oif lo goto deny
    }}
    chain deny {{
        meta l4proto tcp reject with tcp reset
        reject with icmpx admin-prohibited
    }}
}}
"""

    def _site_destination(self) -> str:
        listen = "127.0.0.1" if self.site_listen == "localhost" else self.site_listen
        try:
            address = ipaddress.ip_address(listen)
        except ValueError:
            return ""
        if address.is_unspecified:
            return ""
        return f"ip daddr {address} " if address.version == 4 else f"ip6 daddr {address} "

    def install(self) -> None:
        """(Re)build the table from this stack's current site users, in one transaction."""
        with _LOCK:
            script = f"table inet {self.table}\ndelete table inet {self.table}\n"
            script += self._rules(self.site_uids())
            result = self._nft("-f", "-", input_text=script)
            if result.returncode != 0:
                raise FirewallUnavailable(self._unavailable(result.stderr))
            self._installed = True
            self._prune_stale()
        log.info("firewall.installed", table=self.table)

    def ensure(self) -> None:
        """Install once per process (later changes go element by element)."""
        if not self._installed:
            self.install()

    def admit(self, uid: int) -> None:
        """Fence a new site user before anything runs as it."""
        with _LOCK:
            result = self._nft("add", "element", "inet", self.table, "site_uids", f"{{ {uid} }}")
        if result.returncode != 0:  # the table went away (flushed by hand): rebuild it whole
            self.install()
        if uid not in self.members():
            raise FirewallUnavailable(self._unavailable(f"uid {uid} is not in {self.table}"))

    def release(self, uid: int) -> None:
        """Drop a deleted site user's uid (it may be reused by someone else)."""
        with _LOCK:
            if uid in self.site_uids():  # already reused by a new site of this stack
                return
            self._nft("delete", "element", "inet", self.table, "site_uids", f"{{ {uid} }}")

    def members(self) -> set[int]:
        """The uids the table fences now (empty if there is no table)."""
        result = self._nft("list", "set", "inet", self.table, "site_uids")
        if result.returncode != 0:
            return set()
        match = re.search(r"elements = \{([^}]*)\}", result.stdout)
        return {int(v) for v in re.findall(r"\d+", match.group(1))} if match else set()

    def remove(self) -> None:
        """Delete the table when the stack has no site users left (else keep fencing them)."""
        with _LOCK:
            if self.site_uids():
                return
            self._nft("delete", "table", "inet", self.table)
            self._installed = False

    def _prune_stale(self) -> None:
        """Drop other stacks' tables whose home no longer exists (a test's deleted home)."""
        listed = self._nft("list", "tables", "inet")
        for name in re.findall(rf"table inet ({TABLE_PREFIX}[0-9a-f]{{12}})\b", listed.stdout):
            if name == self.table:
                continue
            shown = self._nft("list", "table", "inet", name)
            match = re.search(r'comment "([^"]+)"', shown.stdout)
            if match and not Path(match.group(1)).exists():
                self._nft("delete", "table", "inet", name)
