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

BANNED = ("socket", "ssl", "asyncio", "trio", "threading", "selectors", "time")
#: Modules outside the engine: they do I/O (or drive something that does) on purpose.
ADAPTER_MODULES = frozenset(
    {
        "__main__",
        "_async_client_base",
        "_client_common",
        "asyncio_client",
        "blocking",
        "server",
        "testing",
        "trio_client",
        "_tls",
    }
)


def _engine_modules() -> tuple[str, ...]:
    """Every module of the package except the adapter layer and the command line.

    Computed from the source tree, so a new engine module is checked without anyone
    remembering to list it.
    """
    package = Path(smtpproto.__file__).parent
    names = sorted(
        path.stem
        for path in package.glob("*.py")
        if path.stem != "__init__"
        and path.stem not in ADAPTER_MODULES
        and not path.stem.startswith("_cli")
    )
    return ("smtpproto", *(f"smtpproto.{name}" for name in names))


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
