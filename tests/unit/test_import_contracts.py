"""The import contracts in pyproject.toml forbid every part of the control plane but the kernel."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _platform_parts() -> set[str]:
    """Every importable module or package directly under controlplane/, but the kernel."""
    parts = set()
    for path in (ROOT / "controlplane").iterdir():
        if path.suffix == ".py" and path.stem != "__init__":
            parts.add(f"controlplane.{path.stem}")
        elif (path / "__init__.py").exists() and path.name != "kernel":
            parts.add(f"controlplane.{path.name}")
    return parts


def test_each_contract_forbids_every_other_part_of_the_control_plane() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {c["name"]: c for c in config["contracts"]}
    chat = contracts["chatbot/ and tools/ import only controlplane.kernel"]
    kernel = contracts["controlplane.kernel imports nothing else of the platform"]
    assert set(chat["source_modules"]) == {"chatbot", "tools"}
    assert set(chat["forbidden_modules"]) == _platform_parts()
    assert set(kernel["forbidden_modules"]) == _platform_parts() | {"chatbot", "tools"}


def test_lint_imports_refuses_a_tool_that_imports_the_control_plane(tmp_path: Path) -> None:
    smuggled = ROOT / "tools" / "_contract_probe.py"
    smuggled.write_text("from controlplane.errors import Conflict\n\nCONFLICT = Conflict\n")
    try:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        smuggled.unlink()
    assert result.returncode == 1, result.stdout
    assert "tools._contract_probe -> controlplane.errors" in result.stdout
