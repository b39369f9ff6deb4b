"""What the add-on and the bridge may import (read from their source, no bpy needed): no import
cycles between the add-on's modules, no torch or server code in the add-on, and only stdlib,
numpy and pyzmq in bridge/ (both run inside Blender's own Python)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(sibling modules imported relatively, top-level packages imported absolutely), lazy
    imports inside functions included."""
    siblings, packages = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            packages.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            packages.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:  # from .x import y
                siblings.add(node.module.split(".")[0])
            else:            # from . import x, y
                siblings.update(alias.name for alias in node.names)
    return siblings, packages


def addon_graph() -> dict[str, set[str]]:
    modules = {path.stem: path for path in (ROOT / "blender_addon").glob("*.py") if path.stem != "__init__"}
    # "bridge" is the vendored copy that wire.py and bonemap.py look for: not a module here.
    return {name: imports_of(path)[0] & set(modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting, done = [], set()

    def visit(node):
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done:
            return None
        visiting.append(node)
        for child in sorted(graph[node]):
            cycle = visit(child)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_addon_has_no_import_cycles():
    graph = addon_graph()
    assert {"ops", "props", "messaging", "replies", "state", "retarget", "retarget_solver"} <= set(graph)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_find_cycle_finds_one():
    assert find_cycle({"ops": {"props"}, "props": {"messaging"}, "messaging": {"ops"}}) == \
        ["messaging", "ops", "props", "messaging"]


def test_ops_keeps_the_operators_and_nothing_else():
    source = (ROOT / "blender_addon" / "ops.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    module_state = [node.targets[0].id for node in tree.body if isinstance(node, ast.Assign)
                    and isinstance(node.targets[0], ast.Name) and isinstance(node.value, (ast.Dict, ast.List))]
    assert module_state == [], f"state belongs in state.py: {module_state}"
    assert "bpy.app.timers.register" not in source and "Client(" not in source


def test_the_addon_never_imports_torch_or_the_server():
    for path in (ROOT / "blender_addon").glob("*.py"):
        packages = imports_of(path)[1]
        assert not packages & {"torch", "inference_server", "transformers", "timm"}, path.name


def test_the_bridge_imports_only_stdlib_numpy_and_pyzmq():
    allowed = set(sys.stdlib_module_names) | {"numpy", "zmq", "__future__"}
    for path in (ROOT / "bridge").glob("*.py"):
        siblings, packages = imports_of(path)
        assert packages <= allowed, f"{path.name} imports {sorted(packages - allowed)}"


def test_the_retarget_solver_needs_neither_bpy_nor_mathutils():
    graph = addon_graph()
    reachable, stack = set(), ["retarget_solver"]
    while stack:
        module = stack.pop()
        if module not in reachable:
            reachable.add(module)
            stack.extend(graph[module])
    for module in reachable:
        packages = imports_of(ROOT / "blender_addon" / f"{module}.py")[1]
        assert not packages & {"bpy", "mathutils", "bpy_extras"}, module
