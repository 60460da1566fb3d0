"""Operators are thin adapters over core and hooks: no operator module imports a sibling step module."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_ml_provider.operators as operators_package

OPERATORS = Path(operators_package.__file__).parent
PACKAGE = "airflow_ml_provider"
SHARED = {"airflow_ml_provider.operators", "airflow_ml_provider.operators.base"}  # the base every step extends


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the operators package (or the package above it)
                base = f"{PACKAGE}.operators" if node.level == 1 else PACKAGE
                module = f"{base}.{module}" if module else base
            modules.add(module)
            modules.update(f"{module}.{alias.name}" for alias in node.names)
    return modules


def test_no_operator_imports_a_sibling_step() -> None:
    steps = {f"{PACKAGE}.operators.{p.stem}" for p in OPERATORS.glob("*.py")} - SHARED
    offenders = {
        path.name: sorted(m for m in _imported_modules(path) if m in steps and m != f"{PACKAGE}.operators.{path.stem}")
        for path in OPERATORS.glob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_operators_import_only_core_hooks_config_and_the_package_version() -> None:
    allowed = (f"{PACKAGE}.core", f"{PACKAGE}.hooks", f"{PACKAGE}.config", f"{PACKAGE}.operators.base")
    for path in OPERATORS.glob("*.py"):
        ours = {m for m in _imported_modules(path) if m.startswith(PACKAGE + ".")} - {f"{PACKAGE}.__version__"}
        assert all(m.startswith(allowed) for m in ours), (path.name, sorted(ours))


def test_the_walk_sees_a_sibling_import(tmp_path: Path) -> None:
    module = tmp_path / "evaluate.py"
    module.write_text("from airflow_ml_provider.operators.train import read_model\nfrom .approve import decider\n")
    found = _imported_modules(module)
    assert "airflow_ml_provider.operators.train" in found and "airflow_ml_provider.operators.approve" in found
