"""The dependency rules of STYLE.md ("Faces, not stores") hold for the whole package.

import-linter checks the contracts of ``[tool.importlinter]`` in pyproject.toml (domain packages
never import Dagster; assets and sensors never import SQLAlchemy; only the definitions import
the assets). The AST check adds what a contract cannot say: assets and sensors import neither a
``store`` module nor a private (``_underscore``) name of the package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "mdm_orchestration"
THIN = sorted((PACKAGE / "assets").rglob("*.py")) + sorted((PACKAGE / "sensors").rglob("*.py"))


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        pytest.fail(f"{lint_imports} is missing: run scripts/setup.sh (dev dependency group)")
    done = subprocess.run(
        [str(lint_imports), "--no-cache", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _absolute(module: Path, node: ast.ImportFrom) -> str:
    """The absolute dotted name an ``import from`` refers to, relative imports resolved."""
    if not node.level:
        return node.module or ""
    parts = list(module.relative_to(REPO).with_suffix("").parts)
    base = parts[: len(parts) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and part != "__init__" for part in dotted.split(".")[1:])


def _violations(module: Path) -> list[str]:
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    where = module.relative_to(PACKAGE)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            pairs = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            pairs = [(_absolute(module, node), alias.name) for alias in node.names]
        else:
            continue
        for owner, name in pairs:
            if owner != "mdm_orchestration" and not owner.startswith("mdm_orchestration."):
                continue
            full = f"{owner}.{name}" if name else owner
            if "store" in full.split("."):
                found.append(f"{where}:{node.lineno}: imports a store module: {full}")
            elif _private(full):
                found.append(f"{where}:{node.lineno}: imports a private name: {full}")
    return found


def test_assets_and_sensors_import_only_faces() -> None:
    assert THIN, "no modules found under assets/ or sensors/"
    problems = [problem for module in THIN for problem in _violations(module)]
    assert not problems, "\n".join(problems)
