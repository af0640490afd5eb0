"""The package's layering, as written in docs/architecture.md, is what the code does.

Every ``import`` of every module (module-level and inside functions alike) is read from
the source and checked against the layer rules; the import graph between modules must
have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "vocalmix"

# lowest first; a module may import its own layer and the layers before it
LAYERS = ("core", "estimators", "app", "training", "frontends")
# what a layer may not import even though it lies below
FORBIDDEN = {
    "estimators": ("vocalmix.core.render",),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module == "vocalmix._version":
        return "version"
    if module == "vocalmix.__main__":  # ``python -m vocalmix`` is the command line
        return "frontends"
    if len(parts) > 1 and parts[1] in ("core", "estimators", "training", "frontends"):
        return parts[1]
    return "app"  # vocalmix itself, api, pipeline, synth, batch...


def imports_of(path: Path) -> set[str]:
    """Every vocalmix module ``path`` imports (resolving relative imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "vocalmix")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "vocalmix":
                continue
            out.add(mod)
            for a in node.names:  # "from vocalmix.core import params" imports a module
                if (SRC / (mod + "." + a.name).replace(".", "/")).with_suffix(".py").exists():
                    out.add(f"{mod}.{a.name}")
    out.discard(me)
    return out


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}
GRAPH = {m: imports_of(p) for m, p in MODULES.items()}


def test_every_module_belongs_to_a_layer():
    assert {layer_of(m) for m in MODULES} <= {"version", *LAYERS}
    assert "vocalmix.core.params" in MODULES and "vocalmix.frontends.cli" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_only_downward(module):
    mine = layer_of(module)
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for target in sorted(GRAPH[module]):
        theirs = layer_of(target)
        if theirs == "version" or target == "vocalmix":
            continue
        if mine == "version" or rank[theirs] > rank[mine]:
            bad.append(f"{target} ({theirs} layer)")
        elif any(target == f or target.startswith(f + ".") for f in FORBIDDEN.get(mine, ())):
            bad.append(f"{target} (forbidden to the {mine} layer)")
    assert not bad, f"{module} ({mine} layer) imports " + ", ".join(bad)


def test_no_import_cycles():
    known = set(GRAPH)
    edges = {m: {t for t in ts if t in known} for m, ts in GRAPH.items()}
    # packages' __init__ re-exporting a submodule is not a cycle of the code
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if MODULES[t].name == "__init__.py" and m.startswith(t + "."):
                continue
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_rule_catches_a_forbidden_import(tmp_path):
    """The checker itself: an estimator importing the renderer or training code is seen."""
    fake = SRC / "vocalmix" / "estimators" / "_probe_forbidden.py"
    code = "from vocalmix.core.render import render\nfrom vocalmix.training import data\n"
    fake.write_text(code)
    try:
        found = imports_of(fake)
    finally:
        fake.unlink()
    assert {"vocalmix.core.render", "vocalmix.training.data"} <= found
    assert layer_of("vocalmix.training.data") == "training"
