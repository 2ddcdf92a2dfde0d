"""The speed harness (bench/bench_speed.py) runs end to end and every row gives numbers.

A smoke test, so the harness cannot rot while nobody runs it: ``--quick`` (one round,
a few hundred messages) against the real peers (Postfix smtp-sink and smtp-source,
aiosmtpd, aiosmtplib; ``.ci/install-peers``), then the JSON it wrote and the tables it
printed are checked for shape. No timing is asserted: only that each row measured
something and that the output is well formed. Plus the paired-ratio arithmetic of
``bench/stats.py`` on fixed numbers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.interop

BENCH = Path(__file__).resolve().parent.parent / "bench"
CLIENT_ROWS = [
    "floor",
    "smtp-source",
    "smtplib",
    "aiosmtplib",
    "blocking send_many",
    "asyncio send_many",
    "trio send_many",
    "blocking sendmail",
    "asyncio sendmail",
    "trio sendmail",
]
CONCURRENCY_ROWS = [
    f"{row} x{n}" for row in ("asyncio send_many", "asyncio sendmail", "aiosmtplib")
    for n in (1, 10, 100)
]  # fmt: skip
SERVER_ROWS = ["smtp-sink", "built-in (drop)", "aiosmtpd (drop)", "asyncio minimal",
               "serve --maildir", "aiosmtpd maildir"]  # fmt: skip
#: Measured too when ``serve`` has ``--workers`` (bench/server_rows.py).
WORKERS_ROW = f"serve --maildir --workers {os.cpu_count() or 2}"
#: Fed by 32 sessions: one process, and the workers when ``serve`` has them.
WIDE_ROW = "serve --maildir -s 32"
WIDE_WORKERS_ROW = f"serve --maildir --workers {os.cpu_count() or 2} -s 32"


def _load_stats() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_stats_under_test", BENCH / "stats.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module by name
    spec.loader.exec_module(module)
    return module


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text``: rows of cells, header first, rule dropped."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, object]]:
    out = tmp_path_factory.mktemp("bench") / "speed.json"
    maildirs = out.parent / "not" / "yet"  # --tmpdir makes a folder that is missing
    argv = [sys.executable, str(BENCH / "bench_speed.py"), "--quick", "--json", str(out)]
    result = subprocess.run(
        [*argv, "--tmpdir", str(maildirs)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert maildirs.is_dir() and not any(maildirs.iterdir())  # its run's folder removed
    return result.stdout, json.loads(out.read_text())


def test_every_row_measured_once(quick_run: tuple[str, dict[str, object]]) -> None:
    _, data = quick_run
    rounds = data["rounds"]
    assert isinstance(rounds, dict)
    expected = {"client": CLIENT_ROWS, "concurrency": CONCURRENCY_ROWS, "server": SERVER_ROWS}
    for family, rows in expected.items():
        assert len(rounds[family]) == 1, family
        measured = rounds[family][0]
        assert set(rows) <= set(measured), (family, sorted(measured))
        for row, sample in measured.items():
            assert sample["messages"] > 0 and sample["wall"] > 0 and sample["cpu"] >= 0, row
    for row in CONCURRENCY_ROWS:
        assert rounds["concurrency"][0][row]["rss_open_per_connection"] >= 0
        assert rounds["concurrency"][0][row]["heap_open_per_connection"] > 0
    for row in SERVER_ROWS:
        assert rounds["server"][0][row]["client_cpu"] >= 0
        assert rounds["server"][0][row]["machine_cpu"] >= 0
    loads = data["loads"]
    assert isinstance(loads, list) and len(loads) == 1 and len(loads[0]) == 2


def test_tables_are_well_formed(quick_run: tuple[str, dict[str, object]]) -> None:
    text, _ = quick_run
    tables = _tables(text)
    assert len(tables) == 4  # client, concurrency, server, issue 14
    for table in tables:
        assert all(len(row) == len(table[0]) for row in table), table
    client, concurrency, server, issue = tables
    assert [row[0] for row in client[1:]] == CLIENT_ROWS
    assert [f"{row[0]} x{row[1]}" for row in concurrency[1:]] == sorted(
        CONCURRENCY_ROWS, key=lambda key: int(key.rsplit("x", 1)[1])
    )
    assert [row[0] for row in server[1:]] in (
        [*SERVER_ROWS, WIDE_ROW],
        [*SERVER_ROWS, WORKERS_ROW, WIDE_ROW, WIDE_WORKERS_ROW],
    )
    for table in (client, concurrency, server):
        for row in table[1:]:
            rate = row[2] if table is concurrency else row[1]
            assert float(rate.replace(",", "")) > 0, row
    assert len(issue) == 7
    for row in issue[1:]:
        assert row[3] and "n/a" not in row[3], row
    assert "load average" in text and "at start" in text and "at end" in text


def test_paired_ratios_are_per_round_medians() -> None:
    stats = _load_stats()
    rounds = [{"a": 2.0, "b": 1.0}, {"a": 3.0, "b": 1.0}, {"a": 4.0, "b": 4.0}, {"a": 9.0}]
    spread = stats.paired(rounds, "a", "b", float)
    assert (spread.median, spread.low, spread.high, spread.count) == (2.0, 1.0, 3.0, 3)
    assert spread.format(".2f", "x") == "2.00x (1.00-3.00)"
    assert stats.per_row(rounds, "a", float).median == 3.5
    assert stats.paired(rounds, "a", "missing", float) is None
    assert stats.Spread.of([5.0]).format(".1f") == "5.0"
    with pytest.raises(ValueError):
        stats.Spread.of([])


def test_messages_have_the_exact_size_and_stream_the_same_bytes() -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_workload_under_test", BENCH / "workload.py"
    )
    assert spec is not None and spec.loader is not None
    workload = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = workload
    spec.loader.exec_module(workload)
    for size in [*range(120, 2000, 7), 1024, 1024 * 1024]:
        try:
            message = workload.make_message(size)
        except ValueError:
            assert size < 120, size  # only below the header's size
            continue
        assert len(message) == size
        try:
            streamed = b"".join(workload.stream_message(size))
        except ValueError:
            continue  # a one-octet remainder: refused before anything is yielded
        assert streamed == message
    with pytest.raises(ValueError):
        workload.make_message(10)
