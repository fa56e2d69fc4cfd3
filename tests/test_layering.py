"""The layering rules of ``pytcp_green.stack``, checked on the source with ``ast`` (nothing is imported).

1. The sans-I/O core imports no runtime: nothing from ``pytcp_green.link``, ``green``, ``patches``,
   ``lab``, ``sim`` or ``host``, and nothing from gevent.
2. The codecs (``stack/wire``) import nothing of the project outside ``stack/wire``.
3. The import graph of ``stack/`` (every import, ``TYPE_CHECKING`` ones included) has no cycle,
   except between the pairs of :data:`ALLOWED_CYCLES`, each with its reason.
4. No module of ``stack/`` imports inside a function (the usual way to hide a cycle).
5. No layer of ``stack/ipv4``, ``stack/ipv6`` or ``stack/datagram`` keeps the Stack (``self.stack``):
   each gets the services and the narrow contracts it uses, wired by the Stack.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "pytcp_green" / "stack"
PREFIX = "pytcp_green.stack"
FORBIDDEN = (*(f"pytcp_green.{name}" for name in ("link", "green", "patches", "lab", "sim", "host")), "gevent")

# Pairs of modules (names below pytcp_green.stack) that may import each other, and why.
ALLOWED_CYCLES: dict[frozenset[str], str] = {
    frozenset(("tcp.layer", "tcp.socket")): "TcpLayer makes TcpSockets (listen, accept) and a socket asks "
    "its layer for ports and connections (types only that way): the two halves of the TCP user interface",
    frozenset(("tcp.socket", "tcp.tcb")): "a TcpSocket drives its Tcb, a Tcb wakes its socket (types only "
    "that way)",
}

# Imports inside a function that are known (module, function), and why; none may be added.
ALLOWED_LOCAL_IMPORTS: dict[tuple[str, str], str] = {}

# Modules whose TYPE_CHECKING import of another module does not count as an edge, and why.
TYPE_ONLY_EDGES: dict[str, str] = {
    "tcp.tcb": "stack/tcp keeps a connection's state in Tcb and its behaviour in modules of functions "
    "that take the Tcb (tcp/__init__.py says so); they name the Tcb type only for hints, and tcb.py "
    "binds them: together they are one class",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(STACK.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str, tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every (statement, imported module) of one module; ``from p import m`` names the module ``p.m``
    when that is one."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if _is_package(name) else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield node, sub if sub in MODULES else base


def _trees() -> Iterator[tuple[str, ast.Module]]:
    for name, path in MODULES.items():
        yield name, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _type_checking_imports(tree: ast.Module) -> set[ast.AST]:
    """The import statements inside ``if TYPE_CHECKING:`` blocks."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            found.update(n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom))
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    type_only = {f"{PREFIX}.{m}" for m in TYPE_ONLY_EDGES}
    for name, tree in _trees():
        hints = _type_checking_imports(tree)
        for node, target in _imports(name, tree):
            if target in type_only and node in hints and target.rpartition(".")[0] == name.rpartition(".")[0]:
                continue  # a type hint within the package of a class split into modules
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def _short(name: str) -> str:
    return name.removeprefix(PREFIX + ".")


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_core_imports_no_runtime() -> None:
    bad = [
        f"{_short(name)}:{node.lineno} imports {target}"
        for name, tree in _trees()
        for node, target in _imports(name, tree)
        if any(target == f or target.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert not bad, "stack/ must not import a runtime:\n" + "\n".join(bad)


def test_wire_imports_only_wire() -> None:
    bad = [
        f"{_short(name)}:{node.lineno} imports {target}"
        for name, tree in _trees() if name.startswith(PREFIX + ".wire")
        for node, target in _imports(name, tree)
        if target.startswith("pytcp_green") and not target.startswith(PREFIX + ".wire")
    ]
    assert not bad, "stack/wire must import nothing of the project outside stack/wire:\n" + "\n".join(bad)


def test_no_import_cycle() -> None:
    graph = _graph()
    for pair in ALLOWED_CYCLES:
        a, b = (f"{PREFIX}.{m}" for m in pair)
        assert b in graph[a] and a in graph[b], f"allowed cycle {sorted(pair)} is gone: drop it from the list"
        graph[a].discard(b)
        graph[b].discard(a)
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle in stack/: " + " -> ".join(_short(m) for m in cycle)


def test_no_import_inside_a_function() -> None:
    bad = []
    for name, tree in _trees():
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    (_short(name), func.name) not in ALLOWED_LOCAL_IMPORTS):
                bad += [f"{_short(name)}:{node.lineno} in {func.name}()" for node in ast.walk(func)
                        if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert not bad, "imports inside functions in stack/:\n" + "\n".join(sorted(set(bad)))


def test_no_layer_keeps_the_stack() -> None:
    layers = tuple(f"{PREFIX}.{package}" for package in ("ipv4", "ipv6", "datagram"))
    bad = sorted(
        f"{_short(name)}:{node.lineno}"
        for name, tree in _trees() if name.startswith(layers)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "stack"
        and isinstance(node.value, ast.Name) and node.value.id == "self"
    )
    assert not bad, "layers holding the Stack (self.stack):\n" + "\n".join(bad)


@pytest.mark.parametrize(("cycle", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set()}, None),
])
def test_the_cycle_finder_finds_cycles(cycle: dict[str, set[str]], expected: list[str] | None) -> None:
    assert _find_cycle(cycle) == expected
