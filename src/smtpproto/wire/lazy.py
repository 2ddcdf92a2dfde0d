"""Lazy re-exports for the facades (PEP 562): a name is imported when first used.

``import smtpproto`` must not pay for what a caller does not use (the server role, SASL
internals, …), yet ``from smtpproto import ServerConnection`` and
``smtpproto.ServerConnection`` keep working. A facade lists where each name lives and
installs the two module hooks this returns::

    HOMES = {".client_engine.connection": ("ClientConnection",)}
    __getattr__, __dir__ = lazy_exports(__name__, HOMES)

The facade keeps the real imports under ``TYPE_CHECKING`` for type checkers and
documentation; ``tests/test_lazy_imports.py`` checks that both lists agree. No I/O,
no state beyond the importing module's own namespace (a resolved name is cached there).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str,
    homes: Mapping[str, Iterable[str]],
    submodules: Iterable[str] = (),
    aliases: Mapping[str, tuple[str, str]] | None = None,
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of the facade module ``package``.

    ``homes`` maps a module (relative to ``package``) to the names it exports;
    ``submodules`` are names of ``package``'s own submodules that are also attributes;
    ``aliases`` maps a name to ``(module, name there)`` when the two differ.
    A name is looked up once, then cached in the facade's namespace; an unknown name
    raises ``AttributeError`` as a plain module does.
    """
    where = {name: (module, name) for module, names in homes.items() for name in names}
    where.update(aliases or {})
    children = frozenset(submodules)
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> object:
        if name in children:
            value: object = import_module(f".{name}", package)
        elif name in where:
            module, original = where[name]
            value = getattr(import_module(module, package), original)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where, *children})

    return __getattr__, __dir__
