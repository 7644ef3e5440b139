"""The package's layers import downward only, and no module imports itself back through others.

core <- config, storage, upstream, catalog <- services <- api, web <- app (the factory) <- cli
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pullthrough"

# What each layer may import from the package, besides itself and `pullthrough` (__version__).
LOWER = {"core"}
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "config": LOWER,
    "storage": LOWER,
    "upstream": LOWER | {"config"},
    "catalog": LOWER,
    "services": LOWER | {"config", "storage", "upstream", "catalog"},
    "api": LOWER | {"config", "storage", "upstream", "catalog", "services"},
    "web": LOWER | {"config", "storage", "upstream", "catalog", "services"},
    "app": LOWER | {"config", "storage", "upstream", "catalog", "services", "api", "web"},
    "cli": LOWER | {"config", "storage", "upstream", "catalog", "services", "api", "web", "app"},
    # names the worker class by its path; run directly, gunicorn starts the node as `serve` does
    "gunicorn_conf": {"cli"},
    "gunicorn_worker": set(),
    "__main__": {"cli"},
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _nodes(tree: ast.AST, *, runtime: bool) -> list[ast.AST]:
    """Every node, leaving out `if TYPE_CHECKING:` blocks when only run time counts."""
    out = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if runtime and isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            todo += node.orelse
            continue
        todo += list(ast.iter_child_nodes(node))
    return out


def imported(path: Path, *, runtime: bool = False) -> set[str]:
    """Every pullthrough module a file imports, at any depth of its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    for node in _nodes(tree, runtime=runtime):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "pullthrough"}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] == "pullthrough"
        ):
            # `from pullthrough.api import kinds` imports the module pullthrough.api.kinds; the
            # package itself only counts when a name comes from its __init__.
            names = {f"{node.module}.{a.name}" for a in node.names}
            out |= names
            out.add(node.module)
    return out


def modules(root: Path = PACKAGE, *, runtime: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports (names that are not modules dropped; a package
    only when nothing more precise was imported from it)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    out = {}
    for name, path in files.items():
        found = {m for m in imported(path, runtime=runtime) if m in files}
        out[name] = {m for m in found if not any(o.startswith(m + ".") for o in found)}
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_there_are_modules_in_every_layer() -> None:
    """The checks below see the package (a moved package would make them pass vacuously)."""
    seen = {layer(m) for m in modules()}
    assert set(ALLOWED) - {"__main__"} <= seen


def upward_imports(root: Path = PACKAGE) -> list[str]:
    wrong = []
    for module, imports in sorted(modules(root).items()):
        own = layer(module)
        if own not in ALLOWED:
            wrong += [] if own == "" else [f"{module}: a module outside the known layers"]
            continue
        for target in sorted(imports):
            other = layer(target)
            if other and other != own and other not in ALLOWED[own]:
                wrong.append(f"{module} imports {target} ({own} may not import {other})")
    return wrong


def cycles(root: Path = PACKAGE) -> list[str]:
    """Import cycles at run time (an annotation may name a type of a module that imports this
    one: `if TYPE_CHECKING:` imports are left out)."""
    graph = modules(root, runtime=True)
    for package in [m for m in graph if (root.parent / m.replace(".", "/")).is_dir()]:
        graph[package] = set()  # a package's __init__ re-exports: not a dependency of its parts
    found = []
    state: dict[str, str] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                found.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_layers_import_downward_only() -> None:
    assert upward_imports() == []


def test_no_import_cycles() -> None:
    assert cycles() == []


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / "pullthrough"
    files = {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/names.py": "def f():\n    from pullthrough.services import container\n",
        "services/__init__.py": "",
        "services/container.py": "from pullthrough.services.tasks import x\n",
        "services/tasks.py": "import pullthrough.services.container\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert upward_imports(root) == [
        "pullthrough.core.names imports pullthrough.services.container"
        " (core may not import services)"
    ]
    assert cycles(root) == [
        "pullthrough.services.container -> pullthrough.services.tasks"
        " -> pullthrough.services.container"
    ]


def test_the_cli_starts_without_the_server_stack() -> None:
    """The REST verbs need the kinds and the declarations, not Flask or the catalog: importing
    those would cost the CLI about a second on every command."""
    probe = "import sys, pullthrough.cli.main; print(sorted({'flask', 'sqlalchemy'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
