"""The house reads as its architecture: no import cycle, lazy or not, and rooms stay in order."""

from __future__ import annotations

import ast
from pathlib import Path

from coupon.core.config import PROJECT_ROOT

PACKAGES = ("coupon", "strategies", "migrations")
# The scripts at the top of the tree, each a room of its own: they use the rooms, none uses them.
SCRIPTS = {"app": "app.py", "gunicorn.conf": "gunicorn.conf.py", "locustfile": "locustfile.py"}
# Where no project code lives (deploy/ holds configuration: a .py there belongs to no room).
OUTSIDE = {"tests", ".venv", ".coupon-data", "reports", ".git"}

# Who may import whom, by room: a room imports only rooms listed after it (or itself).
ORDER = [
    *SCRIPTS,
    "migrations",
    "coupon.cli",
    "coupon.lab",
    "coupon.api",
    "coupon.queue",
    "coupon.runtime",
    "strategies",
    "coupon.store",
    "coupon.servers",
    "coupon.core",
]


def modules() -> dict[str, Path]:
    """Map every project module's dotted name (a script's by its room) to its file."""
    found = {name: PROJECT_ROOT / file for name, file in SCRIPTS.items()}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """Return the project modules a file imports anywhere in it (function bodies included)."""
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            # `from package import module` imports the module; the package's __init__ only
            # counts when a name comes from it.
            named.update(submodules or {node.module})
    return {name for name in named if name in known}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def room(module: str) -> int:
    return next(i for i, prefix in enumerate(ORDER) if module == prefix or module.startswith(prefix + "."))


def test_no_module_imports_itself_back_through_others() -> None:
    edges = graph()
    cycles = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for nxt in sorted(edges[node]):
            if nxt in path:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt], done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(edges):
        if start not in done and start != "coupon":
            visit(start, [start], done)
    assert cycles == []


def test_a_room_never_reaches_back_up() -> None:
    upward = []
    for module, targets in graph().items():
        if module == "coupon":  # the app factory wires every room together
            continue
        for target in targets:
            if target == "coupon" or room(target) >= room(module):
                continue
            upward.append(f"{module} -> {target}")
    assert upward == []


def test_every_python_file_outside_the_tests_is_in_a_room() -> None:
    files = {
        path for path in PROJECT_ROOT.rglob("*.py") if not OUTSIDE & set(path.relative_to(PROJECT_ROOT).parts)
    }
    assert files - set(modules().values()) == set()


def test_every_module_has_a_room() -> None:
    homeless = [
        module
        for module in graph()
        if module != "coupon"
        and not any(module == prefix or module.startswith(prefix + ".") for prefix in ORDER)
    ]
    assert homeless == []
