"""The in-process micro-benchmarks (bench_replies, bench_dataenc, bench_engine) run end
to end in their quick form and print interleaved-round summaries, never a best-of.

Smoke tests, so the scripts cannot rot: one or two rounds, checked for the shape of
what they print (every row has a median with its min-max, ratios are paired). No timing
is asserted. Plus ``bench/micro.py``'s arithmetic on fixed numbers.
"""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SPREAD = r"[\d.,]+[kM]? \([\d.,]+[kM]?-[\d.,]+[kM]?\)"
RATIO = r"[\d.]+x \([\d.]+-[\d.]+\)"


def _run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=BENCH,
    )
    assert result.returncode == 0, result.stderr
    assert "best" not in result.stdout.lower()
    return result.stdout


def _micro() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("micro", BENCH / "micro.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_bench_replies_prints_medians_with_spread_and_paired_ratios() -> None:
    out = _run("bench_replies.py", "--quick", "--rounds", "2")
    assert out.count("load average") == 2
    rows = [line for line in out.splitlines() if line.startswith("| smtpproto Py | ")]
    assert len(rows) == 5  # three modes, the scaling and the linearity tables
    for mode in ("buffer", "reply", "byte"):
        line = next(row for row in rows if f"| {mode} |" in row)
        assert re.search(rf"\| {SPREAD} \|", line), line
        assert re.search(rf"{RATIO} \| {RATIO} \|$", line), line


def test_bench_dataenc_prints_every_twin_against_the_reference() -> None:
    out = _run("bench_dataenc.py", "--quick", "--rounds", "2")
    assert out.count("load average") == 2
    for name in ("Python twin", "reference"):
        assert re.search(rf"{name}.* {SPREAD} MB/s", out), out


def test_bench_engine_runs_without_the_peer(tmp_path: Path) -> None:
    out = _run("bench_engine.py", "--quick", "--rounds", "1", "--venv", str(tmp_path / "none"))
    assert "not available" in out
    assert re.search(r"python parser, pipelined\)\s+[\d,]+ transactions/s", out), out


def test_interleaved_rounds_shuffle_and_pair_within_a_round() -> None:
    micro = _micro()
    calls: list[str] = []
    values = iter([2.0, 1.0, 6.0, 2.0, 4.0, 4.0])

    def row(name: str) -> float:
        calls.append(name)
        return next(values)

    rows = {"a": lambda: row("a"), "b": lambda: row("b")}
    out = io.StringIO()
    rounds = micro.run_interleaved(rows, 3, seed=1, out=out)
    assert len(rounds) == 3 and all(set(r) == {"a", "b"} for r in rounds)
    assert out.getvalue().count("load average") == 3
    # whatever the order, each round's two values are paired with each other
    ratios = sorted(r["a"] / r["b"] for r in rounds)
    spread = micro.paired_ratio(rounds, "a", "b")
    assert spread.median == ratios[1] and spread.low == ratios[0] and spread.high == ratios[2]
    with pytest.raises(ValueError):
        micro.run_interleaved(rows, 0)


def test_rate_counts_every_repetition_not_the_best() -> None:
    micro = _micro()
    ticks = iter([0.0, 1.0, 1.0, 4.0, 4.0, 5.0])  # repetitions of 1 s, 3 s and 1 s
    monkey = pytest.MonkeyPatch()
    monkey.setattr(micro.time, "perf_counter", lambda: next(ticks))
    try:
        rate = micro.rate_for(lambda: None, work=10.0, budget=0.0, minimum=3)
    finally:
        monkey.undo()
    assert rate == pytest.approx(30.0 / 5.0)  # 3 x 10 units in 5 s (best-of would say 10)
