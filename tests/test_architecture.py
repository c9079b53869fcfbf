"""The shape of the code: the import contracts of .importlinter hold, and nothing imports app.py."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (anywhere in the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_nothing_imports_app() -> None:
    sources = [p for folder in ("demo", "model_utils", "benchmarks") for p in (ROOT / folder).rglob("*.py")]
    assert sources and not [p for p in sources if "app" in imported_modules(p)]


def test_import_contracts_hold() -> None:
    if shutil.which("lint-imports") is None:
        pytest.fail("import-linter is not installed (requirements-dev.txt)")
    done = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
