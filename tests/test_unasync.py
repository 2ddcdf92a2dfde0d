"""The blocking client base is generated from the async one and must not drift from it.

``scripts/unasync.py --check`` fails (with a diff) when ``adapters/sync_base.py`` is not
what the script makes of ``adapters/async_base.py``: someone edited one side only.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "unasync.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_sync_base_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_reports_a_stale_file_with_a_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unasync = _load_script()
    stale = tmp_path / "sync_base.py"
    stale.write_text(unasync.TARGET.read_text().replace("def noop(", "def nop("))
    monkeypatch.setattr(unasync, "TARGET", stale)
    assert unasync.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "-    def nop(self)" in out and "+    def noop(self)" in out
    assert unasync.main([]) == 0  # rewrites it
    assert unasync.main(["--check"]) == 0


def test_generated_code_is_blocking() -> None:
    unasync = _load_script()
    text = unasync.TARGET.read_text()
    code = text[text.index('"""', text.index('"""') + 3) :]  # past the module docstring
    for word in ("async ", "await ", "aclose", "__aenter__", "AsyncClientBase"):
        assert word not in code
    assert "class SyncClientBase(ClientCore, abc.ABC):" in code


def test_substitutions() -> None:
    unasync = _load_script()
    line = "    async def __aexit__(self) -> None:  await self.aclose()  # StopAsyncIteration"
    assert unasync.unasync_line(line) == (
        "    def __exit__(self) -> None:  self.close()  # StopIteration"
    )
    assert unasync.unasync_line("awaited = paclose") == "awaited = paclose"  # whole words


@pytest.mark.parametrize(
    ("target", "declares", "imports"),
    [
        ("POOL_TARGET", "class SyncPoolBase(SyncPoolCore):", "from .sync_pool_core import"),
        ("POOL_CORE_TARGET", "class SyncPoolCore(abc.ABC):", "from .sync_base import"),
    ],
)
def test_generated_pool_is_blocking(target: str, declares: str, imports: str) -> None:
    """The pool is generated the same way (``async_pool`` → ``sync_pool``, over
    ``async_pool_core`` → ``sync_pool_core``)."""
    unasync = _load_script()
    text = getattr(unasync, target).read_text()
    code = text[text.index('"""', text.index('"""') + 3) :]
    for word in ("async ", "await ", "aclose", "__aenter__", "Awaitable", "AsyncClientBase"):
        assert word not in code
    for word in ("AsyncPoolCore", "async_pool_core", "AsyncPoolBase"):
        assert word not in code
    assert declares in code
    assert imports in code
    assert "from .sync_base import SyncClientBase" in code


def test_the_pools_share_their_core() -> None:
    from smtpproto.adapters.async_pool import AsyncPoolBase
    from smtpproto.adapters.async_pool_core import AsyncPoolCore
    from smtpproto.adapters.sync_pool import SyncPoolBase
    from smtpproto.adapters.sync_pool_core import SyncPoolCore
    from smtpproto.asyncio_client import AsyncSMTPPool
    from smtpproto.blocking import SMTPPool

    assert issubclass(AsyncSMTPPool, AsyncPoolBase) and issubclass(AsyncPoolBase, AsyncPoolCore)
    assert issubclass(SMTPPool, SyncPoolBase) and issubclass(SyncPoolBase, SyncPoolCore)


def test_pool_substitutions() -> None:
    unasync = _load_script()
    assert unasync.unasync_line("    from .async_base import AsyncClientBase") == (
        "    from .sync_base import SyncClientBase"
    )
    assert unasync.unasync_line("sleep: Callable[[float], Awaitable[None]]") == (
        "sleep: Callable[[float], None]"
    )
    assert unasync.unasync_line("token: AsyncTokenSource | None") == "token: TokenSource | None"
