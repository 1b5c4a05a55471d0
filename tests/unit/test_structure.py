"""The package's structure, as docs/design.md promises it: no import circle among nanwatch's
modules, no Python module over 450 lines, no module importing another module's private name, and
the engine importing nothing above `nanwatch.engine` but `nanwatch.ops`. Read from the source with
`ast` (nothing is imported), so it runs without TensorFlow."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "nanwatch"
MAX_LINES = 450


def _modules() -> dict:
    """dotted name -> path, for every .py file of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> list:
    """[(imported module, [names taken from it])] for imports of nanwatch modules, lazy ones included."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "nanwatch":
                found.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names if a.name.split(".")[0] == "nanwatch")
    return found


def _graph() -> dict:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        for target, names in _imports(name, path):
            for taken in names:   # `from . import stats` imports the module nanwatch.engine.stats
                if f"{target}.{taken}" in modules:
                    edges.add(f"{target}.{taken}")
            if target in modules and not all(f"{target}.{t}" in modules for t in names or ["?"]):
                edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    graph = _graph()
    assert len(graph) > 30 and graph["nanwatch.session"], "the import graph was not read"
    assert _cycles(graph) == []


def test_a_circle_would_be_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_the_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_no_private_name_crosses_modules():
    """A private module is its package's own (views/_format.py serves the views); a private function,
    class or constant is its module's own."""
    modules = _modules()
    crossing = []
    for name, path in modules.items():
        package = name.rsplit(".", 1)[0] if path.name != "__init__.py" else name
        for target, names in _imports(name, path):
            for n in names:
                if not n.startswith("_") or n.startswith("__"):
                    continue
                if f"{target}.{n}" in modules and target == package:
                    continue
                crossing.append(f"{name} takes {target}.{n}")
    assert crossing == []


def test_the_engine_imports_nothing_above_it_but_the_op_taxonomy():
    above = []
    for name, path in _modules().items():
        if not name.startswith("nanwatch.engine"):
            continue
        for target, names in _imports(name, path):
            taken = [f"{target}.{n}" for n in names] if target == "nanwatch" else [target]
            above.extend(f"{name} -> {t}" for t in taken
                         if not t.startswith("nanwatch.engine") and t != "nanwatch.ops")
    assert above == []
