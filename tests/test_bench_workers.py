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
def test_every_configuration_is_measured(mode: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_workers.py"), "--rounds", "1", "--sessions", "2",
         "--messages", "40", *mode],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| serve")]
    assert [row.split("|")[1].strip() for row in rows] == ["serve", "serve --workers 2"]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 9, row
        assert float(cells[1].replace(",", "")) > 0, row
    assert "round 1/1" in result.stdout and "load average" in result.stdout
