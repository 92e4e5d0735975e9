"""The package's shape: imports point down the layers (DESIGN.md: cli > bench > generation and training >
sampling > checkpoints > models > ops > kernels > config and the basics), no import cycle, no module past ~400
lines. Read from the source with ast (function-level imports count too)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "ncsn_fast"
# Lowest first. A module may import its own layer or a lower one, never a higher one.
LAYERS = [
    {"errors", "fileio", "machine", "hostmem", "digits", "losses", "data", "version", "runlock"},
    {"config", "images"},
    {"kernels"},
    {"ops"},
    {"models"},
    {"checkpoints"},
    {"sampling"},
    {"accelerate", "generate", "training", "toy", "quality"},
    {"bench"},
    {"cli"},
]
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found = [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        else:
            continue
        for dep in found:
            while dep not in mods and "." in dep:
                dep = dep.rsplit(".", 1)[0]
            if dep in mods and dep != name:
                out.add(dep)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def _layer(name: str) -> int | None:
    """The layer of a module; None for the package itself (the public facade, importing from every layer)."""
    parts = name.split(".")
    if len(parts) == 1:
        return None
    return next(i for i, layer in enumerate(LAYERS) if parts[1] in layer)


def test_every_module_has_a_layer():
    unplaced = [m for m in _graph() if m != "ncsn_fast" and not any(m.split(".")[1] in layer for layer in LAYERS)]
    assert not unplaced, f"modules in no layer: {unplaced}"


def test_imports_point_down():
    upward = [f"{a} -> {b}" for a, deps in _graph().items() for b in deps
              if _layer(a) is not None and (_layer(b) is None or _layer(b) > _layer(a))]
    assert not upward, "imports from a lower layer to a higher one: " + ", ".join(sorted(upward))


def test_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"
    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_modules_stay_short():
    lines = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
