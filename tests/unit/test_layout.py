"""The product package stays apart: ``sync`` never imports ``workers``, and imports the emulators only lazily
from the two commands that run them (``closedloop demo`` and ``closedloop sandbox serve``)."""

from __future__ import annotations

import ast
from pathlib import Path

SYNC = Path(__file__).parents[2] / "sync"
LAZY_SANDBOX_IMPORTERS = {"cli/service_cmd.py", "cli/sandbox_cmd.py"}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, id(node) in top))
    return out


def test_sync_never_imports_workers() -> None:
    offenders = [
        f"{path.relative_to(SYNC)}: {module}"
        for path in SYNC.rglob("*.py")
        for module, _top in _imports(path)
        if module == "workers" or module.startswith("workers.")
    ]
    assert not offenders, offenders


def test_sandboxes_only_lazily_from_demo_and_sandbox_serve() -> None:
    offenders = [
        f"{path.relative_to(SYNC)}: {module}"
        for path in SYNC.rglob("*.py")
        for module, top in _imports(path)
        if (module == "sandboxes" or module.startswith("sandboxes."))
        and (top or str(path.relative_to(SYNC)) not in LAZY_SANDBOX_IMPORTERS)
    ]
    assert not offenders, offenders


def test_the_check_sees_imports_inside_functions() -> None:
    imports = _imports(SYNC / "cli" / "sandbox_cmd.py")
    assert any(module.startswith("sandboxes") and not top for module, top in imports)
