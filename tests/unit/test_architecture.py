"""The shape of the house: subpackages named for concepts, dependencies that run one way, one exception root, small
rooms. Each check reads the code itself (its files and their imports), so the shape cannot drift unnoticed."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import tasks
import workers
from workers.errors import SignalError

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400
MAX_TOP_MODULES = 12

# Each module's floor: a module imports only from lower floors, or from its own package. Faces on top, the ground
# (settings, the clock, the exception root, the compat module) at the bottom.
FLOORS: dict[str, int] = {
    "workers.cli": 9,  # the command line starts every other face (api, metrics, ...)
    "tasks": 8,
    "workers.web": 8,
    "workers.localrun": 8,
    "workers.app": 7,  # the Celery app the tasks register on
    "workers.observe": 6,
    "workers.pipeline": 5,
    "workers.integrations": 4,
    "workers.queue": 3,
    "workers.events": 2,
    "workers.sink": 2,
    "workers.store": 2,
    "workers.websites": 2,
    "workers.crypto": 1,
    "workers.classify": 1,
    "workers.observe.logs": 1,
    "workers.settings": 0,
    "workers.clock": 0,
    "workers.errors": 0,
    "workers.compat": 0,
    "workers": 0,
}


def python_files() -> list[Path]:
    return sorted([*(ROOT / "workers").rglob("*.py"), *(ROOT / "tasks").rglob("*.py")])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    """The package (or top-level module) a module belongs to: its FLOORS key."""
    for name in sorted(FLOORS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    raise AssertionError(f"{module} is in no room of FLOORS: add it where it belongs")


def imports(path: Path) -> set[str]:
    """Every workers / tasks module a file imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in ("workers", "tasks")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("workers", "tasks"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(
                    candidate
                    if (ROOT / candidate.replace(".", "/")).with_suffix(".py").exists()
                    or (ROOT / candidate.replace(".", "/") / "__init__.py").exists()
                    else node.module
                )
    return found


def test_every_module_lives_in_a_room_and_imports_only_downward():
    wrong = []
    for path in python_files():
        module = module_name(path)
        own = room(module)
        for target in imports(path):
            if target in ("workers", "tasks"):
                continue
            other = room(target)
            if other != own and FLOORS[other] >= FLOORS[own]:
                wrong.append(f"{module} (floor {FLOORS[own]}) imports {target} (floor {FLOORS[other]})")
    assert not wrong, "imports that run sideways or back up:\n" + "\n".join(sorted(wrong))


def test_the_import_graph_has_no_circle():
    graph = {module_name(p): {t for t in imports(p) if t not in ("workers", "tasks")} for p in python_files()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(target) :] + [target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_file_is_longer_than_a_room_should_be():
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in python_files()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, f"split these along their concepts (over {MAX_LINES} lines):\n" + "\n".join(long)


def test_the_top_of_workers_holds_few_modules():
    top = sorted(p.name for p in (ROOT / "workers").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


def all_modules() -> list[str]:
    names = [workers.__name__, tasks.__name__]
    for package in (workers, tasks):
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(names)


@pytest.mark.parametrize("name", all_modules())
def test_every_exception_the_fleet_defines_derives_from_the_one_root(name: str):
    module = importlib.import_module(name)
    strays = [
        cls.__qualname__
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == name and issubclass(cls, BaseException) and not issubclass(cls, SignalError)
    ]
    assert not strays, f"{name} defines exceptions outside SignalError: {strays}"
