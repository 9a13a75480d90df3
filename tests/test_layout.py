"""The layout is the product's map: dependencies point down (handlers → bot → models)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHANNEL_LIBRARIES = ("telegram", "aiohttp", "handlers")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top_level))
    return found


def test_the_core_knows_no_channel_library() -> None:
    offenders = []
    for package in ("bot", "models", "config", "qr"):
        for path in (ROOT / package).rglob("*.py"):
            for module, top in _imports(path):
                if module.split(".")[0] in CHANNEL_LIBRARIES:
                    # The composition root wires the channels in, lazily, when the server starts.
                    if path.name == "app.py" and path.parent.name == "bot" and not top:
                        continue
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_models_know_nothing_above_them() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / "models").rglob("*.py")
        for module, _ in _imports(path)
        if module.split(".")[0] in ("bot", "handlers", "qr")
    ]
    assert offenders == []
