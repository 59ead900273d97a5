"""The import direction flows/ -> tasks/ -> carbonshift/, and a core with no Prefect in it."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import carbonshift

REPO = Path(__file__).resolve().parents[1]
# Adapters that need a cloud SDK may import it; none of them may import Prefect either way.
NEEDS_CLOUD_SDK: set[str] = set()


def _core_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(carbonshift.__path__, "carbonshift.")]
    return ["carbonshift", *sorted(n for n in names if n not in NEEDS_CLOUD_SDK)]


def test_core_loads_no_prefect() -> None:
    modules = _core_modules()
    assert "carbonshift.planner.choose" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_core_imports_neither_tasks_nor_flows() -> None:
    for path in (REPO / "carbonshift").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"prefect", "tasks", "flows"}, f"{path}: imports {name}"


def test_nothing_reads_the_shared_folder() -> None:
    for folder in ("carbonshift", "tests", "benchmarks", "flows", "tasks", "deployments"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in {".py", ".yaml", ".yml", ".toml"} and path != Path(__file__):
                assert "../shared" not in path.read_text(encoding="utf-8"), path
