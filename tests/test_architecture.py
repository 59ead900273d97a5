"""The import direction flows/ -> tasks/ -> carbonshift/, and a core with no Prefect in it."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
import tomllib
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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> list[str]:
    """Every module `path` imports, at module level, under `if TYPE_CHECKING`, or inside a function
    (a function-level import is how a cycle hides). Relative imports are resolved against the
    module's package; `from pkg import name` counts `pkg.name` when that is a module, else `pkg`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found.extend(f"{base}.{a.name}" for a in node.names)
    return found


def _graph(top: str) -> dict[str, set[str]]:
    """Module -> the modules of `top` it imports (only names that are modules of `top`)."""
    paths = {_module_name(p): p for p in (REPO / top).rglob("*.py")}
    return {
        name: {m for m in _imports(path) if m in paths and m != name}
        for name, path in paths.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles as paths `a -> b -> ... -> a`: every back edge of a depth-first walk in
    sorted order, so each knot of modules shows at least once."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in state:
            continue
        path = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return found


def test_the_cycle_finder_finds_a_hidden_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [
        ["a", "b", "a"],
        ["c", "d", "c"],
    ]


def test_function_level_imports_count(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from carbonshift.planner.choose import slot_of\n")
    assert "carbonshift.planner.choose" in _imports(module, "m")


def test_core_has_no_import_cycle() -> None:
    graph = _graph("carbonshift")
    assert "carbonshift.planner.choose" in graph["carbonshift.planner"]
    cycles = _cycles(graph)
    assert cycles == [], "import cycles in the core:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_tasks_never_import_flows() -> None:
    for path in (REPO / "tasks").rglob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] != "flows", f"{path}: imports {name}"


def test_providers_do_not_import_the_planner() -> None:
    for path in (REPO / "carbonshift" / "providers").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith("carbonshift.planner"), f"{path}: imports {name}"


# flows/ and tasks/ are project code, run from the project folder; installed as top-level
# `flows` and `tasks` they would collide with any other project's packages of those names.


def test_only_carbonshift_is_installed() -> None:
    found = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = found["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include, "name the installed packages explicitly"
    assert all(pattern.startswith("carbonshift") for pattern in include), include


def _without_the_install() -> str:
    """Python code that drops what the installed project would add: the editable finder and
    the folders `flows` or `tasks` could come from (PYTHONPATH, the script folder)."""
    return (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        f"sys.path[:] = [p for p in sys.path if p not in ('', '.', {str(REPO)!r})]\n"
        "for name in [m for m in sys.modules if m.split('.')[0] in ('flows', 'tasks')]:\n"
        "    del sys.modules[name]\n"
    )


def test_a_worker_loads_the_entrypoints_from_the_working_directory() -> None:
    """What a Prefect worker does with `flows/train.py:train_model` after its pull step has set
    the working directory: Prefect puts that directory on sys.path, so `tasks` and `flows`
    import from the project folder, without an install."""
    code = _without_the_install() + (
        "from prefect.flows import load_flow_from_entrypoint\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('flows') is None\n"
        "names = [load_flow_from_entrypoint(e, use_placeholder_flow=False).name for e in\n"
        "         ('flows/train.py:train_model', 'flows/plan.py:plan_training')]\n"
        "print(','.join(names), sys.modules['tasks'].__file__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names, tasks_file = result.stdout.split()
    assert names == "train-model,plan-training"
    assert Path(tasks_file) == REPO / "tasks" / "__init__.py"
