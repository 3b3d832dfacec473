"""The site fence's rules: what they let a site user reach, checked by `nft -c` (no change
is made to the machine) where nftables can run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from controlplane.stack import firewall
from controlplane.stack.firewall import FirewallUnavailable, SiteFirewall, loopback_resolvers


def _fence(tmp_path: Path, listen: str = "127.0.0.1") -> SiteFirewall:
    return SiteFirewall(home=tmp_path, sites_dir=tmp_path / "sites", site_port=18080,
                        site_listen=listen, mariadb_port=3307)  # fmt: skip


def test_loopback_resolvers_are_kept_reachable(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\n"
                    "nameserver fe80::1%eth0\nnameserver bogus\noptions edns0\n")  # fmt: skip
    assert loopback_resolvers(conf) == ["127.0.0.53", "::1"]
    assert loopback_resolvers(tmp_path / "missing") == []


def test_rules_allow_only_the_stacks_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firewall, "loopback_resolvers", lambda: ["127.0.0.53", "::1"])
    rules = _fence(tmp_path)._rules({1001, 1002})
    assert "elements = { 1001, 1002 }" in rules
    accepts = [line.strip() for line in rules.splitlines() if line.strip().endswith("accept")]
    assert accepts == [
        "oif lo ip daddr 127.0.0.1 tcp dport 18080 accept",
        "oif lo ip daddr 127.0.0.1 tcp dport 3307 accept",
        "oif lo ip daddr { 127.0.0.53 } meta l4proto { tcp, udp } th dport 53 accept",
        "oif lo ip6 daddr { ::1 } meta l4proto { tcp, udp } th dport 53 accept",
    ]
    assert "oif lo goto deny" in rules and "169.254.0.0/16" in rules and "fd00:ec2::254" in rules
    # nginx on every address: the site port is allowed on any local address, nothing else.
    assert "oif lo tcp dport 18080 accept" in _fence(tmp_path, "::")._rules(set())
    # Two stacks never share a table.
    assert _fence(tmp_path).table != _fence(tmp_path / "other").table


@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft as root")
def test_rules_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firewall, "loopback_resolvers", lambda: ["127.0.0.53", "::1"])
    result = subprocess.run(["nft", "-c", "-f", "-"], input=_fence(tmp_path)._rules({1001}),
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_no_nft_means_no_site(tmp_path: Path) -> None:
    fence = SiteFirewall(home=tmp_path, sites_dir=tmp_path / "sites", site_port=1,
                         site_listen="127.0.0.1", mariadb_port=2, nft=str(tmp_path / "no-nft"))  # fmt: skip
    with pytest.raises(FirewallUnavailable, match="nftables"):
        fence.ensure()
    with pytest.raises(FirewallUnavailable, match="refusing to create sites"):
        fence.admit(12345)
