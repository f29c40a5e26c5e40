"""`ocx.testing` ships for plugins' tests, but nothing an ocx command runs may depend on it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Every folder that installs as runtime code (pyproject's package-dir), minus ocx/testing itself.
RUNTIME = [REPO / "ocx", REPO / "harness", REPO / "benchmarks", REPO / "adapters", REPO / "recipes"]


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _is_testing(module: str) -> bool:
    return module == "ocx.testing" or module.startswith("ocx.testing.")


def _runtime_files() -> list[Path]:
    testing = REPO / "ocx" / "testing"
    return [
        path
        for folder in RUNTIME
        for path in folder.rglob("*.py")
        if testing not in path.parents and "__pycache__" not in path.parts
    ]


def test_no_runtime_module_imports_the_test_support_package():
    files = _runtime_files()
    assert len(files) > 100  # the scan really covers the package
    offenders = {}
    for path in files:
        found = sorted(n for n in _imported_modules(path) if _is_testing(n))
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}


def test_the_old_test_support_modules_are_gone_from_the_runtime_packages():
    for old in ("harness/mock_server.py", "benchmarks/testing.py", "harness/data/synthetic.py"):
        assert not (REPO / old).exists(), f"{old} is test support: it belongs in ocx/testing/"
