"""The package's layering, and the import graph that checks it.

Layers, top to bottom (a module may import only from its own layer or the layers below it;
the two engines do not import each other):

4. cli                 ``salspike.cli``
3. experiments         training, sweeps, protocols, compare, figures (figures, levelfigures, rasters, sketch)
2. levels              ``salspike.levels`` (the registry; adapters import their engines)
1. engines             ``salspike.matrix`` (numpy), ``salspike.brian`` (Brian2 builders, devices)
0. ground              ``salspike.circuit`` (schema, plan, weights, layout, hooks), datasets,
                       metrics, results, resources, console, plotting, errors

Regenerate the graph (module -> the salspike modules it imports, lazy imports included) and
check it with::

    python -m salspike.layers          # prints the graph by layer; exit 1 on an upward import
    python -m salspike.layers --dot    # Graphviz of the package-level graph
    python -m salspike.layers --root OTHER/salspike   # the graph of another checkout
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ENGINES = ("salspike.matrix", "salspike.brian")
_LAYER_OF = [  # (module prefix, layer), most specific first
    ("salspike.cli", 4),
    ("salspike.training", 3), ("salspike.sweeps", 3), ("salspike.protocols", 3), ("salspike.compare", 3),
    ("salspike.figures", 3), ("salspike.levelfigures", 3), ("salspike.rasters", 3), ("salspike.sketch", 3),
    ("salspike.demo", 3),
    ("salspike.levels", 2),
    ("salspike.matrix", 1), ("salspike.brian", 1),
    ("salspike", 0),
]
LAYER_NAMES = {4: "cli", 3: "experiments", 2: "levels", 1: "engines", 0: "ground"}


def layer_of(module: str) -> int:
    for prefix, layer in _LAYER_OF:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    raise KeyError(module)


def _engine(module: str) -> str | None:
    return next((e for e in ENGINES if module == e or module.startswith(e + ".")), None)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path | None = None) -> dict[str, set[str]]:
    """module -> salspike modules it imports (every import statement, lazy ones included)."""
    root = Path(__file__).resolve().parent if root is None else Path(root)
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        mod = _module_name(path, root)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("salspike"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.startswith("salspike"):
                    if node.module is None:  # from . import devices
                        deps.update(f"{target}.{a.name}" for a in node.names)
                    else:
                        deps.add(target)
        graph[mod] = {d for d in deps if d != mod}
    return graph


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that run upward, or from one engine into the other."""
    out = []
    for mod, deps in graph.items():
        for dep in sorted(deps):
            if layer_of(dep) > layer_of(mod):
                out.append(f"{mod} ({LAYER_NAMES[layer_of(mod)]}) imports {dep} ({LAYER_NAMES[layer_of(dep)]}): upward")
            a, b = _engine(mod), _engine(dep)
            if a and b and a != b:
                out.append(f"{mod} imports {dep}: one engine imports the other")
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = None
    if "--root" in argv:  # another checkout's salspike/ folder, e.g. to compare with an older version
        root = Path(argv[argv.index("--root") + 1])
    graph = import_graph(root)
    if "--dot" in argv:
        edges = sorted({(_package(m), _package(d)) for m, ds in graph.items() for d in ds
                        if _package(m) != _package(d)})
        print("digraph salspike {\n  rankdir=TB;")
        for a, b in edges:
            print(f'  "{a}" -> "{b}";')
        print("}")
        return 0
    for layer in sorted(LAYER_NAMES, reverse=True):
        print(f"== {layer} {LAYER_NAMES[layer]}")
        for mod in sorted(m for m in graph if layer_of(m) == layer):
            deps = sorted(graph[mod])
            print(f"  {mod} -> {', '.join(d.replace('salspike.', '') for d in deps) if deps else '(none)'}")
    bad = violations(graph)
    for line in bad:
        print(f"VIOLATION: {line}", file=sys.stderr)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports, {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
