"""wm_core's layers import only downward, and no package has an import cycle.

Imports are read from the source with :mod:`ast` (nothing is imported):
module-level imports and those inside functions count alike.  ``LAYERS``
lists wm_core's layers from the bottom up; a module may import its own layer
and the layers below it.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from wm_core.deprecation import MOVED_MODULES

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: wm_core's layers, bottom first: each entry names packages or modules (a
#: package stands for all its modules).
LAYERS: list[tuple[str, ...]] = [
    ("wm_core.deprecation", "wm_core.tf_helpers"),
    ("wm_core.api",),
    ("wm_core.tasks", "wm_core.data", "wm_core.peers", "wm_core.ownership"),
    ("wm_core.planning", "wm_core.models"),
    ("wm_core.reporting", "wm_core.rollout"),
    ("wm_core.evaluation",),
    ("wm_core.loops", "wm_core.ray_collect"),
    ("wm_core", "wm_core.cli", "wm_core.testing"),
]


def package_modules(package_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Every module of the package at ``package_dir``, by dotted name (``__init__`` as the package)."""
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if any(part in {"tests", "build", "__pycache__"} for part in parts):
            continue
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name: str, path: pathlib.Path, modules: set[str]) -> set[str]:
    """The modules among ``modules`` that the module ``name`` (its source at ``path``) imports
    (an old path of :data:`~wm_core.deprecation.MOVED_MODULES` as itself)."""
    modules = modules | set(MOVED_MODULES)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # ``from package import module`` imports the module; ``from module import name`` the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import a.b.c`` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(package_dir: pathlib.Path) -> dict[str, set[str]]:
    """Each module of the package at ``package_dir`` -> the package's modules it imports
    (through an old path or the new one)."""
    modules = package_modules(package_dir)
    return {
        name: {MOVED_MODULES.get(target, target) for target in imports_of(name, path, set(modules))}
        & set(modules)
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the longest entry that is ``module`` or a package of it."""
    matches = [
        (len(entry), number)
        for number, entries in enumerate(LAYERS)
        for entry in entries
        if module == entry or (module.startswith(entry + ".") and entry != "wm_core")
    ]
    if not matches:
        raise AssertionError(f"{module} is in no layer of tests/test_layers.py LAYERS: add it there")
    return max(matches)[1]


#: The import packages of the plugins and of the example plugins.
PLUGIN_PACKAGES = sorted(
    path.parent
    for pattern in ("plugins/*/*/__init__.py", "examples/*/*/__init__.py")
    for path in ROOT.glob(pattern)
    if path.parent.name != "tests"
)


def test_cycles_finds_a_cycle_and_only_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"b"}}) == []


def test_imports_of_reads_module_level_in_function_and_relative_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py"):
        (package / name).write_text("")
    (package / "a.py").write_text("import pkg.b\ndef f():\n    from pkg.sub import c\n")
    (package / "sub" / "c.py").write_text("from .. import b\nfrom ..a import f\nimport os\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b", "pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.b", "pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.c"]]


def test_wm_core_has_no_import_cycle():
    assert cycles(import_graph(ROOT / "wm_core")) == []


@pytest.mark.parametrize("package_dir", PLUGIN_PACKAGES, ids=lambda path: path.name)
def test_a_plugin_package_has_no_import_cycle(package_dir):
    assert cycles(import_graph(package_dir)) == []


def test_wm_core_imports_only_downward():
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in sorted(import_graph(ROOT / "wm_core").items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


@pytest.mark.parametrize("package_dir", [ROOT / "wm_core", *PLUGIN_PACKAGES], ids=lambda path: path.name)
def test_our_own_code_imports_no_moved_path(package_dir):
    modules = package_modules(package_dir)
    old = [f"{module} imports {target} (now {MOVED_MODULES[target]})"
           for module, path in sorted(modules.items())
           for target in sorted(imports_of(module, path, set(modules)))
           if target in MOVED_MODULES]
    assert old == []
