"""``import smtpproto`` loads only what is used (PEP 562 facades, ``wire/lazy.py``),
and every public import path still works."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import smtpproto
import smtpproto.sasl

PACKAGE = Path(smtpproto.__file__).resolve().parent
#: What no client import may load: the server role and its SASL verifiers, the
#: built-in server and the command line.
SERVER_SIDE = ("smtpproto.server_engine", "smtpproto.builtin_server", "smtpproto.cli")


def loaded_after(statement: str) -> set[str]:
    """The package's modules loaded by ``statement`` in a fresh interpreter."""
    listing = "print(*sorted(m for m in sys.modules if m.startswith('smtpproto')))"
    code = f"import sys\n{statement}\n{listing}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


def under(modules: set[str], *prefixes: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)}


def test_import_smtpproto_loads_almost_nothing() -> None:
    assert loaded_after("import smtpproto") == {
        "smtpproto",
        "smtpproto._version",
        "smtpproto.wire",
        "smtpproto.wire.lazy",
    }


def test_the_client_engine_does_not_load_the_server_role_or_sasl_internals() -> None:
    loaded = loaded_after("from smtpproto import ClientConnection, Ehlo, Reply")
    assert "smtpproto.client_engine.connection" in loaded
    assert not under(loaded, *SERVER_SIDE, "smtpproto.adapters", "smtpproto.drivers")
    assert not under(
        loaded, "smtpproto.sasl.mechanisms", "smtpproto.sasl.scram", "smtpproto.sasl.server"
    )
    assert not under(loaded, "smtpproto.sasl.saslprep")


@pytest.mark.parametrize(
    "facade", ["smtpproto.blocking", "smtpproto.asyncio_client", "smtpproto.exceptions"]
)
def test_client_facades_do_not_load_the_server_role(facade: str) -> None:
    loaded = loaded_after(f"import {facade}")
    assert facade in loaded
    assert not under(loaded, *SERVER_SIDE, "smtpproto.sasl.server")


def test_the_blocking_client_loads_sasl_mechanisms_only_when_used() -> None:
    loaded = loaded_after("import smtpproto.blocking")
    assert not under(loaded, "smtpproto.sasl.mechanisms", "smtpproto.sasl.scram")
    after_login = loaded_after(
        "import smtpproto.blocking\nfrom smtpproto.sasl import choose_mechanism"
    )
    assert "smtpproto.sasl.scram" in after_login


def test_the_server_role_loads_when_asked_for() -> None:
    loaded = loaded_after("from smtpproto import ServerConnection")
    assert "smtpproto.server_engine.connection" in loaded
    assert not under(loaded, "smtpproto.builtin_server", "smtpproto.cli")


def homes(module: ModuleType) -> dict[str, tuple[str, str]]:
    """Public name -> (relative module, name there), from the facade's ``if
    TYPE_CHECKING:`` imports."""
    tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
    found: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                origin = "." * statement.level + (statement.module or "")
                for alias in statement.names:
                    found[alias.asname or alias.name] = (origin, alias.name)
    return found


def lazy_table(module: ModuleType) -> dict[str, tuple[str, str]]:
    table = {name: (home, name) for home, names in module._HOMES.items() for name in names}
    table.update(getattr(module, "_ALIASES", {}))
    return table


@pytest.mark.parametrize("module", [smtpproto, smtpproto.sasl], ids=lambda m: m.__name__)
def test_lazy_table_type_checking_imports_and_all_agree(module: ModuleType) -> None:
    typed = homes(module)
    submodules = {name for name, (home, _) in typed.items() if home == "."}
    assert {n: h for n, h in typed.items() if n not in submodules} == lazy_table(module)
    assert sorted(typed) == sorted(module.__all__)


@pytest.mark.parametrize("module", [smtpproto, smtpproto.sasl], ids=lambda m: m.__name__)
def test_every_public_name_resolves_to_its_home_object(module: ModuleType) -> None:
    table = lazy_table(module)
    for name in module.__all__:
        value = getattr(module, name)
        if name in table:
            home, original = table[name]
            assert value is getattr(importlib.import_module(home, module.__name__), original)
        else:
            assert isinstance(value, ModuleType)
            assert value is sys.modules[f"{module.__name__}.{name}"]
    assert set(module.__all__) <= set(dir(module))


def test_from_import_and_attribute_access_work_in_a_fresh_interpreter() -> None:
    code = (
        "from smtpproto import ServerConnection, ClientConnection, codes, sasl, NEED_DATA\n"
        "import smtpproto\n"
        "assert smtpproto.ServerConnection is ServerConnection\n"
        "assert smtpproto.sasl.Plain is sasl.Plain\n"
        "assert codes.explain(550).startswith('')\n"
        "assert smtpproto.PARSER_IMPLEMENTATION in ('c', 'python')\n"
        "from smtpproto.sasl import ScramSHA256, choose_mechanism\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("module", [smtpproto, smtpproto.sasl], ids=lambda m: m.__name__)
def test_unknown_names_fail_as_for_any_module(module: ModuleType) -> None:
    with pytest.raises(AttributeError, match=f"module '{module.__name__}' has no attribute 'Nope'"):
        module.Nope  # noqa: B018
    with pytest.raises(ImportError, match="cannot import name 'Nope'"):
        exec(f"from {module.__name__} import Nope", {})


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from smtpproto import *", namespace)
    assert set(smtpproto.__all__) <= set(namespace)
