#!/usr/bin/env bash
# Moves what chatbot/ and tools/ share with the control plane into controlplane/kernel/ and
# rewrites every import in the repository (no shims are left at the old paths).
# Idempotent: run it again after merging other branches to move what they added.
#   usage: bash kernel_move.sh [repo-dir]   (default: the current directory)
set -euo pipefail
cd "${1:-.}"

# Whole modules: old path -> new path.
MOVES=(
  "controlplane/auth.py controlplane/kernel/auth.py"
  "controlplane/logs.py controlplane/kernel/logs.py"
  "controlplane/names.py controlplane/kernel/names.py"
  "controlplane/clock.py controlplane/kernel/clock.py"
  "controlplane/ratelimit.py controlplane/kernel/ratelimit.py"
  "controlplane/client.py controlplane/kernel/client.py"
  "controlplane/api/middleware.py controlplane/kernel/request_id.py"
)
mkdir -p controlplane/kernel
for move in "${MOVES[@]}"; do
  read -r old new <<<"$move"
  if [[ -f "$old" && ! -f "$new" ]]; then
    git mv "$old" "$new"
  elif [[ -f "$old" && -f "$new" ]]; then
    echo "both $old and $new exist: merge them by hand" >&2
    exit 1
  fi
done

python3 - <<'PY'
"""Rewrite imports of moved modules and moved names, in every tracked Python file."""

import ast
import re
import subprocess
from pathlib import Path

MODULES = {
    "controlplane.auth": "controlplane.kernel.auth",
    "controlplane.logs": "controlplane.kernel.logs",
    "controlplane.names": "controlplane.kernel.names",
    "controlplane.clock": "controlplane.kernel.clock",
    "controlplane.ratelimit": "controlplane.kernel.ratelimit",
    "controlplane.client": "controlplane.kernel.client",
    "controlplane.api.middleware": "controlplane.kernel.request_id",
}
# Names that left a module which stays: (old module, name) -> new module.
NAMES = {
    **{
        ("controlplane.permissions", n): "controlplane.kernel.identity"
        for n in ("Role", "Principal", "InvalidClaims", "principal_from_claims", "claims_for")
    },
    **{
        ("controlplane.api.errors", n): "controlplane.kernel.problems"
        for n in ("problem", "PROBLEM", "install_problem_handlers")
    },
    ("controlplane.crypto", "write_private_file"): "controlplane.kernel.files",
    **{
        ("controlplane.settings", n): "controlplane.kernel.settings"
        for n in ("SharedSettings", "Provider", "default_home")
    },
}


def target_exists(module: str) -> bool:
    return Path(module.replace(".", "/") + ".py").exists()


def alias_text(alias: ast.alias) -> str:
    return alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"


def rewrite_from(node: ast.ImportFrom) -> list[str] | None:
    """The statements that replace `node`, or None to keep it."""
    if node.level or node.module is None:
        return None
    groups: dict[str, list[str]] = {}
    changed = False
    for alias in node.names:
        dest = node.module
        if node.module in MODULES:
            dest = MODULES[node.module]
        elif (node.module, alias.name) in NAMES and target_exists(NAMES[node.module, alias.name]):
            dest = NAMES[node.module, alias.name]
        elif f"{node.module}.{alias.name}" in MODULES:  # from controlplane import clock
            dest = MODULES[f"{node.module}.{alias.name}"].rsplit(".", 1)[0]
        changed |= dest != node.module
        groups.setdefault(dest, []).append(alias_text(alias))
    if not changed:
        return None
    return [f"from {mod} import {', '.join(names)}" for mod, names in groups.items()]


def rewrite_import(node: ast.Import) -> list[str] | None:
    changed = False
    out = []
    for alias in node.names:
        name = MODULES.get(alias.name, alias.name)
        changed |= name != alias.name
        out.append(name if alias.asname is None else f"{name} as {alias.asname}")
    return [f"import {', '.join(out)}"] if changed else None


DOTTED = re.compile(r"\b(" + "|".join(re.escape(m) for m in MODULES) + r")\b(?![\w/])")


def rewrite_source(text: str) -> str:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.splitlines(keepends=True)
    edits = []
    for node in ast.walk(tree):
        new = None
        if isinstance(node, ast.ImportFrom):
            new = rewrite_from(node)
        elif isinstance(node, ast.Import):
            new = rewrite_import(node)
        if new is not None:
            end = node.end_lineno or node.lineno
            edits.append((node.lineno, end, node.col_offset, node.end_col_offset or 0, new))
    for start, end, col, end_col, new in sorted(edits, reverse=True):
        indent = lines[start - 1][:col]
        tail = lines[end - 1][end_col:].rstrip("\n")  # e.g. "  # noqa: E402"
        lines[start - 1 : end] = [indent + stmt + tail + "\n" for stmt in new]
    text = "".join(lines)
    # Dotted names in strings: monkeypatch targets, `python -c` snippets, uvicorn app paths.
    return DOTTED.sub(lambda m: MODULES[m.group(1)], text)


PATHS = {
    m.replace(".", "/") + ".py": n.replace(".", "/") + ".py" for m, n in MODULES.items()
}
PATH_RE = re.compile("|".join(re.escape(p) for p in PATHS))

files = subprocess.run(
    ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
    capture_output=True,
    text=True,
    check=True,
)
changed = []
for name in files.stdout.splitlines():
    path = Path(name)
    if not path.is_file() or path.is_symlink() or name == "kernel_move.sh":
        continue
    if path.suffix == ".py":
        old = path.read_text()
        new = rewrite_source(old)
    elif path.suffix == ".md" and path.name != "CHANGELOG.md":
        old = path.read_text()
        new = PATH_RE.sub(lambda m: PATHS[m.group(0)], old)
    else:
        continue
    if new != old:
        path.write_text(new)
        changed.append(name)
print("\n".join(changed))
Path(".kernel_move_changed").write_text("\n".join(p for p in changed if p.endswith(".py")))
PY

mapfile -t CHANGED <.kernel_move_changed
rm -f .kernel_move_changed
if ((${#CHANGED[@]})); then
  .venv/bin/ruff check --select I --fix --quiet "${CHANGED[@]}" || true
  .venv/bin/ruff format --quiet "${CHANGED[@]}"
fi
