"""The PHP scripts the local provider feeds a site's php on stdin: each one after the shared
start (site_boot.php: the input, the request for the site's address, WP_INSTALLING), with
its input in place of the marker."""

from __future__ import annotations

from pathlib import Path

from controlplane.stack.templates import php_string

HERE = Path(__file__).parent
MARKER = "__AIPRESS_INPUT__"
OPENING = "<?php\n"


def site_script(name: str) -> str:
    """site_boot.php followed by the script `name` of this folder, as one PHP program."""
    boot = (HERE / "site_boot.php").read_text()
    script = (HERE / name).read_text()
    if not script.startswith(OPENING):
        raise ValueError(f"{name} must start with {OPENING!r}")
    return boot + script.removeprefix(OPENING)


def with_input(script: str, payload: str) -> str:
    """The script with `payload` (JSON text) as its input, quoted as a PHP string."""
    return script.replace(MARKER, php_string(payload), 1)
