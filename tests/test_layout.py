"""The package's imports flow one way: storage -> nn, envs -> data, datagen -> agents -> runners -> bench -> cli.

Every `import dipole...` in every module (at the top or inside a function) is read from the source; a module may
import only its own layer or lower ones, and the import graph has no cycle. The package root (`dipole/__init__.py`,
the public API) is the one module allowed to import from any layer.
"""

import ast
import os

import dipole

PACKAGE = os.path.dirname(dipole.__file__)
LAYERS = [
    ("dipole._quiet", "dipole.version", "dipole.errors", "dipole.storage", "dipole.seeding",
     "dipole.runfolder"),
    ("dipole.nn", "dipole.envs"),
    ("dipole.data", "dipole.datagen"),
    ("dipole.agents",),
    ("dipole.runners",),
    ("dipole.bench",),
    ("dipole.cli",),
]


def layer(module: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS in {__file__}")


def modules() -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = os.path.join(root, f)
    return out


def imports_of(path: str, all_modules) -> set[str]:
    """The dipole modules a file imports (a package import counts as its __init__ module)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == "dipole" and name in all_modules:
                found.add(name)
    return found


def test_every_import_flows_down_and_there_is_no_cycle():
    mods = modules()
    graph = {m: imports_of(p, mods) - {m} for m, p in mods.items()}
    upward = [(m, t) for m, targets in graph.items() if m != "dipole" for t in targets
              if t == "dipole" or layer(t) > layer(m)]
    assert not upward, "imports against the layer order:\n" + "\n".join(f"  {m} -> {t}" for m, t in upward)

    # depth-first search for a cycle among the modules below the package root
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m] - {"dipole"}):
            if state.get(t) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m != "dipole" and m not in state:
            visit(m)


def test_the_walk_sees_real_edges():
    # guard against a walker that finds nothing: a few edges known to exist
    mods = modules()
    graph = {m: imports_of(p, mods) for m, p in mods.items()}
    assert "dipole.nn.flow" in graph["dipole.agents.dipole"]
    assert "dipole.runners.offline" in graph["dipole.bench.runner"]
    assert "dipole.envs.dmc" in graph["dipole.data.dmc"]
    assert layer("dipole.cli") == len(LAYERS) - 1


def test_test_oracles_are_not_shipped():
    assert "dipole.analysis" not in modules()
