"""bench/bench_workers.py runs end to end: one serve and serve --workers 2 fed by
smtp-source, each configuration measured (rate, cores busy, spread over the workers).

A smoke test, so the harness cannot rot: one round of a few messages against the real
smtp-source (``.ci/install-peers``); only the shape of the output is checked, never a
timing or a ratio.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("mode", [[], ["--new-connections"]])
def test_every_configuration_is_measured(mode: list[str], tmp_path: Path) -> None:
    maildirs = tmp_path / "not" / "yet"  # --tmpdir makes a folder that is missing
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_workers.py"), "--rounds", "1", "--sessions", "2",
         "--messages", "40", "--tmpdir", str(maildirs), "--verbose", *mode],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert maildirs.is_dir()
    rows = [line for line in result.stdout.splitlines() if line.startswith("| serve")]
    assert [row.split("|")[1].strip() for row in rows] == ["serve", "serve --workers 2"]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 13, row
        assert float(cells[1].replace(",", "")) > 0, row
        assert float(cells[6]) >= 0 and float(cells[8]) >= 0, row  # share, switches/msg
        assert 0.0 <= float(cells[9]) <= 1.0, row  # the user share of the server's CPU
    workers = [cell.strip() for cell in rows[1].strip("|").split("|")]
    assert 0.0 <= float(workers[-1]) <= 1.0  # the messages spread over the workers
    runs = [line for line in result.stdout.splitlines() if line.startswith("  -s 2 m")]
    assert len(runs) == 2 and all("messages" in line for line in runs), result.stdout
    assert "round 1/1" in result.stdout and "load average" in result.stdout


def test_one_worker_is_refused() -> None:
    """``serve --workers 1`` is one process: its row would be the ``serve`` row again
    under another name."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_workers.py"), "--workers", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--workers needs 2 or more" in result.stderr
