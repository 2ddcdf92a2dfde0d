"""bench/bench_fastlane_sizes.py runs end to end and prints its table (a smoke test, so
the benchmark cannot rot; no timing is asserted). It runs the built-in server as its
own process and the blocking client against it, a few messages per row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
ROWS = ["lane, varied", "general, varied", "lane, bytearray", "lane, 1 KB", "general, 1 KB"]
ROWS += ["lane, BDAT varied", "general, BDAT varied"]


def test_the_benchmark_runs_and_prints_every_row() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_fastlane_sizes.py"),
            *("--rounds", "1", "--messages", "60"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    rows = [
        line.split("|")[1].strip() for line in lines if line.startswith("| ") and "---" not in line
    ]
    assert rows == ["row", *ROWS]
    for line in lines:
        if line.startswith("| ") and line.split("|")[1].strip() in ROWS:
            cpu, rate = (cell.strip() for cell in line.split("|")[2:4])
            assert float(cpu) > 0 and float(rate.replace(",", "")) > 0
    assert sum("CPU per message, general" in line for line in lines) == 4
