"""The engine never loads I/O, clock or threading modules (docs/design.md §1).

A fresh interpreter drops whatever the interpreter itself preloaded (CPython imports
``time`` at start-up on some builds), installs an import hook that refuses the banned
modules, then imports the package and every engine module: any import of a banned
module, direct or through the stdlib, fails the import and the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import smtpproto
from test_layout import LAYERS

BANNED = ("socket", "ssl", "asyncio", "trio", "threading", "selectors", "time")
#: The engine's layers: the wire layer, SASL, both connection engines, the drivers.
#: The adapters, the built-in server and the command line do I/O on purpose.
ENGINE_LAYERS = sorted(name for name, rank in LAYERS.items() if rank <= LAYERS["drivers"])
#: Top-level modules that re-export the engine (the other facades re-export adapters).
ENGINE_FACADES = ("codes", "exceptions", "sasl")


def _engine_modules() -> tuple[str, ...]:
    """The package, its engine facades and every module of the engine's subpackages.

    Computed from the source tree, so a new engine module is checked without anyone
    remembering to list it.
    """
    package = Path(smtpproto.__file__).parent
    names = sorted(
        ".".join(path.relative_to(package).with_suffix("").parts).removesuffix(".__init__")
        for layer in ENGINE_LAYERS
        for path in (package / layer).rglob("*.py")
    )
    assert len(names) > 30, names  # the engine's modules were found
    return ("smtpproto", *(f"smtpproto.{name}" for name in (*ENGINE_FACADES, *names)))


ENGINE_MODULES = _engine_modules()

SCRIPT = """
import sys
BANNED = {banned!r}
for name in BANNED:
    sys.modules.pop(name, None)

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BANNED:
            raise ImportError("engine imported banned module " + name)
        return None

sys.meta_path.insert(0, Blocker())
import importlib
for module in {modules!r}:
    importlib.import_module(module)
loaded = sorted(name for name in BANNED if name in sys.modules)
assert not loaded, loaded
print("clean")
"""


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )


def test_engine_imports_no_io_modules() -> None:
    result = _run(SCRIPT.format(banned=BANNED, modules=ENGINE_MODULES))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def test_the_check_can_fail() -> None:
    """The same harness notices a banned import (so the test above is not vacuous)."""
    result = _run(SCRIPT.format(banned=BANNED, modules=("smtpproto", "selectors")))
    assert result.returncode != 0
    assert "banned module selectors" in result.stderr
