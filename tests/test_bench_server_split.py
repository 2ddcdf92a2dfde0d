"""``bench/server_split.py`` runs end to end: a smoke test, so the tool that splits a
server's CPU per message (read callbacks against the rest) cannot rot while nobody runs
it. Real peers (Postfix's smtp-source); one round of a few messages per server; no
timing is asserted, only that each server gave the three figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

BENCH = Path(__file__).resolve().parent.parent / "bench"
KINDS = ["builtin-drop", "asyncio-minimal", "asyncio-minimal-timer"]


def test_each_server_gets_its_cpu_split() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "server_split.py"),
            "--rounds",
            "1",
            "--messages",
            "40",
            *KINDS,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=BENCH,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figure = r"(-?\d+\.\d) \((-?\d+\.\d)-(-?\d+\.\d)\)"
    for kind in KINDS:
        line = next(line for line in result.stdout.splitlines() if line.startswith(kind + " "))
        found = re.findall(rf"(cpu|callback|rest) {figure}", line)
        assert [name for name, *_ in found] == ["cpu", "callback", "rest"], line
        cpu, callback, rest = (float(median) for _, median, *_ in found)
        assert cpu > 0 and callback > 0
        assert abs(cpu - callback - rest) < 0.2  # the rest is the CPU the callbacks left
