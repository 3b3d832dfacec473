"""Name validation: DNS labels, reserved words, domains, env var names."""

from __future__ import annotations

import pytest

from controlplane.kernel import names


@pytest.mark.parametrize("good", ["a", "crumbs", "my-bakery", "shop2", "a" * 40])
def test_good_site_names(good: str) -> None:
    assert names.check_site_name(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "A",
        "1shop",
        "-x",
        "x-",
        "a--b",
        "a_b",
        "a.b",
        "x;drop",
        "../etc",
        "a b",
        "a" * 41,
        "admin",
        "www",
        "caf\u00e9",
        "x'--",
    ],
)
def test_bad_site_names(bad: str) -> None:
    with pytest.raises(ValueError):
        names.check_site_name(bad)


def test_tenant_length_limit() -> None:
    names.check_tenant_id("t" * 30)
    with pytest.raises(ValueError, match="30"):
        names.check_tenant_id("t" * 31)


@pytest.mark.parametrize(
    "good,expected", [("Shop.Example.com.", "shop.example.com"), ("a-b.co", "a-b.co")]
)
def test_domains_are_normalised(good: str, expected: str) -> None:
    assert names.check_domain(good) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "localhost",
        "x.localhost",
        "http://a.com",
        "a.com/x",
        "a.com:80",
        "com",
        "1.2.3.4",
        "a..b",
        "-a.com",
    ],
)
def test_bad_domains(bad: str) -> None:
    with pytest.raises(ValueError):
        names.check_domain(bad)


@pytest.mark.parametrize(
    "bad", ["lower", "1X", "AIPRESS_X", "DB_PASSWORD", "PATH", "A-B", "X" * 65]
)
def test_bad_env_names(bad: str) -> None:
    with pytest.raises(ValueError):
        names.check_env_name(bad)


def test_domains_under_the_platform_domain_are_refused() -> None:
    with pytest.raises(ValueError, match="preview names"):
        names.check_domain("shop.victim.sites.example.com", "sites.example.com")
    assert names.check_domain("sites.example.com.evil.org", "sites.example.com")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("metadata.google.internal", "reserved or private"),
        ("db.corp.internal", "reserved or private"),
        ("printer.local", "reserved or private"),
        ("router.home.arpa", "reserved or private"),
        ("1.0.0.127.in-addr.arpa", "reserved or private"),
        ("metadata.goog", "metadata"),
        ("metadata", "fully qualified"),
        ("0x7f.0x1", "IP address"),
        ("127.1", "IP address"),
        ("[::1]", "fully qualified"),
        ("fe80::1.example.com", "invalid"),
        ("intranet", "fully qualified"),
    ],
)
def test_reserved_and_private_domains_are_refused(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        names.check_domain(bad)


def test_the_platform_domain_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="preview names"):
        names.check_domain("sites.example.com", "sites.example.com")
    assert names.check_domain("www.google.com") == "www.google.com"  # refused by proof, not name
