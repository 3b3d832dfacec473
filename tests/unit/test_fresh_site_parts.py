"""The parts of a fresh site that need no stack: the homepage check, the must-use plugins'
installer, the outbound allow-list setting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from controlplane.providers.local.mu_plugins import install_mu_plugins, platform_mu_plugins
from controlplane.providers.readiness import (
    PAGE_READ_LIMIT,
    generator_version,
    get_page,
    homepage_problem,
)
from controlplane.settings import Settings

PAGE = (
    "<!DOCTYPE html><html><head><title>Bob&#8217;s Cakes &#038; Co &#8211; Home</title>"
    '<meta name="generator" content="WordPress 6.1.9" /></head><body>hi</body></html>'
)


def test_a_probe_reads_a_page_up_to_its_limit_and_an_endless_one_is_cut() -> None:
    sent = {"bytes": 0}

    def endless() -> Iterator[bytes]:
        while True:
            sent["bytes"] += 65536
            yield b"<p>" + b"x" * 65533

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/endless":
            return httpx.Response(200, content=endless())
        return httpx.Response(200, content=PAGE.encode(), headers={"Content-Type": "text/html"})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        page = get_page(client, "http://site/")
        assert (page.status_code, page.text) == (200, PAGE)
        cut = get_page(client, "http://site/endless")
    assert (cut.status_code, cut.text) == (200, None)
    assert PAGE_READ_LIMIT < sent["bytes"] <= PAGE_READ_LIMIT + 2 * 65536
    assert homepage_problem(cut.status_code, cut.text, "x") == (
        "the homepage is longer than 2 MiB; a probe reads no more"
    )


def test_the_homepage_check_says_what_is_wrong() -> None:
    assert homepage_problem(200, PAGE, "Bob's Cakes & Co") is None  # texturized and escaped
    assert generator_version(PAGE) == "6.1.9"
    assert homepage_problem(200, "", "x") == "the site renders an empty page"
    assert homepage_problem(200, "  \n", "x") == "the site renders an empty page"
    assert homepage_problem(503, PAGE, "x") == "the homepage answers HTTP 503"
    assert homepage_problem(302, "", "x") == "the homepage answers HTTP 302"
    mid_install = PAGE.replace("Bob&#8217;s Cakes &#038; Co &#8211; Home", "My Site")
    assert homepage_problem(200, mid_install, "Crumbs") == (
        "the homepage's title is 'My Site', not 'Crumbs'"
    )
    no_generator = PAGE.replace("generator", "robots")
    assert homepage_problem(200, no_generator, "Bob's Cakes") == (
        "the homepage carries no WordPress generator tag"
    )
    assert homepage_problem(200, "<html>nothing</html>", "x") == "the homepage has no <title>"


@pytest.mark.skipif(os.geteuid() != 0, reason="root-owned files need root")
def test_must_use_plugins_are_root_owned_exact_and_never_written_through_a_link(
    tmp_path: Path,
) -> None:
    content = tmp_path / "wp-content"
    content.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (content / "mu-plugins").symlink_to(elsewhere)  # planted by the site's user
    names = install_mu_plugins(content)
    assert names == sorted(platform_mu_plugins()) and "aipress-loopback.php" in names
    assert list(elsewhere.iterdir()) == []  # nothing went through the link
    target = content / "mu-plugins"
    assert not target.is_symlink() and target.stat().st_uid == 0
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    for name, data in platform_mu_plugins().items():
        assert (target / name).read_bytes() == data
        assert (target / name).stat().st_uid == 0
        assert oct((target / name).stat().st_mode & 0o777) == "0o644"
    (target / "stale.php").write_text("<?php // no longer shipped")
    os.chown(target, 1, 1)  # a directory root does not own is not trusted: replaced
    assert install_mu_plugins(content) == names
    assert sorted(p.name for p in target.iterdir()) == names
    assert target.stat().st_uid == 0


def test_the_outbound_allow_list_takes_host_names_only() -> None:
    allowed = Settings(site_outbound_allow=("API.Stripe.com", "*.example.com"))
    assert allowed.site_outbound_allow == ("api.stripe.com", "*.example.com")
    for bad in ("a b", "x');phpinfo();//", "http://x.com", "*", "a,b"):
        with pytest.raises(ValidationError):
            Settings(site_outbound_allow=(bad,))
    assert Settings().default_theme == "twentytwentythree"
    with pytest.raises(ValidationError):
        Settings(default_theme="../../etc")
