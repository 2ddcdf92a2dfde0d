"""The package layout is the architecture (docs/design.md §1 and §5).

The import graph of ``src/smtpproto`` is built from the source with ``ast`` (every
``import`` statement, at any depth, ``TYPE_CHECKING`` blocks included) and checked:

* no import circle between modules;
* layers import downwards only: a module imports its own subpackage or a lower layer,
  never a higher one nor a sibling of the same rank (the client and server engines do
  not know each other; neither do the client adapters and the built-in server);
* no subpackage imports the public facades at the top (``smtpproto.blocking``, ...):
  they re-export for users, the code imports where things live;
* every import of the package is relative, so the folder can be vendored under
  another name;
* every subpackage has a rank here, so a new one is placed on purpose;
* the longest chain of imports that run (``TYPE_CHECKING`` blocks left out) stays short.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

import smtpproto

PACKAGE = Path(smtpproto.__file__).parent

#: Each subpackage's layer; a module may import its own subpackage and lower ranks.
LAYERS = {
    "wire": 0,  # errors, limits, escaping, ABNF, Reply, codes, the twins, NEED_DATA
    "sasl": 1,  # client mechanisms, server verifiers, SASLprep, SCRAM
    "client_engine": 2,  # ClientConnection and its commands, events, states, ...
    "server_engine": 2,  # ServerConnection and its commands, events, replies, ...
    "drivers": 3,  # login, sendmail, send_many, ... written once (sans-IO)
    "adapters": 4,  # blocking, asyncio and trio clients, TLS helpers
    "builtin_server": 4,  # the asyncio server and the test helpers
    "fuzz": 5,  # the black-box server fuzzer: runner, oracles, probes, campaign, replay
    "cli": 6,  # the smtpproto command line
}
#: Top-level modules that every layer may import (no imports of their own).
LEAVES = frozenset({"_version"})
#: The longest chain of imports that run, in modules: 14 today, ``__main__`` -> cli (2)
#: -> adapters (2) -> drivers (5: session, batch, mail, mail_steps, core) -> client
#: engine (2) -> wire (2). It was 13 until ``drivers/mail.py`` became ``MailDrivers``
#: over two base classes of its own modules (``mail_prepare``, ``mail_steps``), each a
#: ``DriverCore``, so one link more.
LONGEST_CHAIN = 14


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_only(tree: ast.Module) -> set[int]:
    """The ``id`` of every node inside an ``if TYPE_CHECKING:`` block."""
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }


def _imports(path: Path, *, runtime_only: bool = False) -> Iterable[tuple[str, int, int]]:
    """``(absolute target, level, line)`` of every import of the package in ``path``;
    with ``runtime_only``, not those under ``if TYPE_CHECKING:``."""
    name = _module_name(path)
    package = name.split(".") if path.stem == "__init__" else name.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "smtpproto":
                    yield alias.name, 0, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if (node.module or "").split(".")[0] == "smtpproto":
                    yield node.module or "", 0, node.lineno
                continue
            base = package[: len(package) - node.level + 1]
            module = ".".join([*base, node.module] if node.module else base)
            yield module, node.level, node.lineno
            for alias in node.names:  # ``from . import codes`` imports a module
                yield f"{module}.{alias.name}", node.level, node.lineno


@cache
def _graph(runtime_only: bool = False) -> dict[str, set[str]]:
    sources = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {
            target
            for target, _, _ in _imports(path, runtime_only=runtime_only)
            if target in sources and target != name
        }
        for name, path in sources.items()
    }


def _layer(module: str) -> str | None:
    """The subpackage of ``module``, ``None`` for the package root and its top modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
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


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes up a layer, sideways to a sibling, or to a facade."""
    wrong = []
    for module, targets in sorted(graph.items()):
        layer = _layer(module)
        if layer is None:
            continue  # the root and the facades may import any layer
        for target in sorted(targets):
            target_layer = _layer(target)
            if target_layer == layer:
                continue
            if target_layer is None:
                if target.split(".")[-1] not in LEAVES:
                    wrong.append(f"{module} imports the facade {target}")
            elif LAYERS[target_layer] >= LAYERS[layer]:
                wrong.append(f"{module} ({layer}) imports {target} ({target_layer})")
    return wrong


def _longest_chain(graph: dict[str, set[str]]) -> list[str]:
    @cache
    def longest(node: str) -> tuple[str, ...]:
        below = [longest(target) for target in graph[node]]
        return (node, *max(below, key=len, default=()))

    return list(max((longest(node) for node in graph), key=len))


def test_every_subpackage_has_a_layer() -> None:
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(LAYERS)


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_layers_import_downwards_only() -> None:
    assert _upward(_graph()) == []


def test_imports_of_the_package_are_relative() -> None:
    absolute = [
        f"{path.relative_to(PACKAGE)}:{line} imports {target}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for target, level, line in _imports(path)
        if level == 0
    ]
    assert absolute == []


def test_import_chains_stay_short() -> None:
    chain = _longest_chain(_graph(runtime_only=True))
    assert len(chain) <= LONGEST_CHAIN, " -> ".join(chain)


# -- the checks can fail -------------------------------------------------------------------


def test_type_only_imports_are_told_apart(tmp_path: Path) -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import smtpproto\n")
    type_only = _type_only(tree)
    assert [isinstance(node, ast.Import) for node in ast.walk(tree) if id(node) in type_only] == [
        True,
        False,  # the alias inside the import
    ]


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("smtpproto.wire.reply", "smtpproto.sasl.base"),  # up
        ("smtpproto.client_engine.events", "smtpproto.server_engine.events"),  # sideways
        ("smtpproto.drivers.session", "smtpproto.blocking"),  # a facade
    ],
)
def test_an_upward_import_is_found(module: str, target: str) -> None:
    assert _upward({module: {target}, target: set()}) != []


def test_a_downward_import_passes() -> None:
    graph = {
        "smtpproto.cli.send": {"smtpproto.adapters.blocking", "smtpproto._version"},
        "smtpproto.adapters.blocking": {"smtpproto.wire.errors"},
        "smtpproto.wire.errors": set(),
        "smtpproto._version": set(),
    }
    assert _upward(graph) == []
    assert _longest_chain(graph) == [
        "smtpproto.cli.send",
        "smtpproto.adapters.blocking",
        "smtpproto.wire.errors",
    ]
