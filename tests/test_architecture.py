"""The shape of the code: `web → layers → geo` one way, no Flask below web, no import cycle, and
no module grown past what a reader takes in at once."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("geo", "layers", "web", "data")
# What each package may import of the others (itself always).
ALLOWED = {"geo": set(), "layers": {"geo"}, "data": {"geo", "layers"}, "web": {"geo", "layers", "data"}}
MAX_LINES = 520
# Generated data, not code a reader reads top to bottom.
LONG_ON_PURPOSE: set[str] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """The project modules `name` imports, at any depth of the file (lazy imports count too)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_dependencies_point_one_way_and_no_flask_below_web():
    wrong = []
    for name, path in _modules().items():
        top = name.split(".")[0]
        for target in _imports(name, path, _modules()):
            other = target.split(".")[0]
            if other != top and other not in ALLOWED[top]:
                wrong.append(f"{name} imports {target}")
        if top in ("geo", "layers"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                wrong.extend(f"{name} imports {n}" for n in names if n.split(".")[0].startswith("flask"))
    assert wrong == []


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            # A package's __init__ importing its own modules is how a package exposes them, and a
            # module importing its package's __init__ is the same edge backwards: not a cycle.
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_no_module_outgrows_a_reading():
    long = {f"{p.relative_to(ROOT)}: {n}" for p in ROOT.joinpath().glob("*/**/*.py")
            if p.parts[len(ROOT.parts)] in PACKAGES + ("tests", "bench")
            and "migrations" not in p.parts and ".venv" not in p.parts
            and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
            and p.relative_to(ROOT).as_posix() not in LONG_ON_PURPOSE}
    assert long == set()
