"""bench/bench_send_many_cpu.py runs end to end and prints its table (a smoke test, so
the benchmark cannot rot; no timing is asserted): its fake transport answers as
smtp-sink does and every message of the in-memory batch is delivered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_in_memory_benchmark_runs_and_prints_every_row() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_send_many_cpu.py"),
            "--rounds",
            "2",
            "--messages",
            "50",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:4]]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    assert list(rows) == ["row", "send_many", "engine", "floor"]
    for name in ("send_many", "engine", "floor"):
        cpu, ratio = rows[name]
        assert float(cpu.split()[0]) > 0 and ratio.endswith(")")
    assert rows["floor"][1].startswith("1.00x")
