"""Measure ``smtpproto fuzz`` against the planted-flaw servers and the clean servers.

    .venv/bin/python fuzz/measure.py        # all: 60 s per flaw, 300 s per clean target
    .venv/bin/python fuzz/measure.py --budget 30 --clean-budget 60 --flaws smuggle-lf,crash-nul
    .venv/bin/python fuzz/measure.py --skip-flaws --clean-targets clean,aiosmtpd,builtin,exim
    .venv/bin/python fuzz/measure.py --json results.json --jobs 2

For every planted flaw (``tests/fuzz/flaws.py``): a fresh flawed server with a random
seed (its thresholds are printed in the server's banner lines), one campaign within
``--budget`` seconds, then every claimed finding (each ``.jsonl`` file) is replayed with
the ``smtpproto replay`` command line against a fresh instance (it must reproduce and the
server must log ``FLAW-TRIGGERED <flaw>``) and against the clean server (it must not
reproduce). A flaw counts as found when one transcript passes both. The time to find is
when the campaign announced the first finding that verifies.

For every clean target (the clean planted server, current aiosmtpd, the built-in server,
Exim; ``aiosmtpd-1.4.4`` on request) one campaign within ``--clean-budget``: any finding
is a false positive, except on aiosmtpd 1.4.4, which must give exactly its two CVEs.

Prints a table per part and the per-phase seconds and connections (mean over campaigns).
The targets live in ``tests/fuzz`` (this script imports them from there).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fuzz.flaws import FLAWS  # noqa: E402  (tests/fuzz, see above)
from fuzz.harness import Campaign, find, fuzz, start, transcripts  # noqa: E402

CLEAN_TARGETS = ("clean", "aiosmtpd", "builtin", "exim")


def measure_flaw(flaw: str, budget: float, seed: int) -> dict[str, Any]:
    """One campaign against a fresh ``flaw`` instance, its findings verified by replay."""
    with tempfile.TemporaryDirectory(prefix=f"measure-{flaw}-") as folder:
        started = time.monotonic()
        campaign, verdict = find(flaw, Path(folder), budget=budget, seed=seed)
        claimed = transcripts(campaign.out)
        found_at = None
        if verdict is not None:
            number = int(verdict.transcript.parent.name.rpartition("-")[2] or 1)
            at = campaign.found_at
            found_at = at[number - 1] if 0 < number <= len(at) else None
        return {
            "flaw": flaw,
            "kind": FLAWS[flaw].kind,
            "found": verdict is not None,
            "time_to_find": found_at,
            "claimed": len(claimed),
            "verified_transcript": str(verdict.transcript.parent.name) if verdict else None,
            "campaign_seconds": round(campaign.report.seconds, 2),
            "wall_seconds": round(time.monotonic() - started, 2),
            "connections": campaign.report.target.connections,
            "phases": [phase.to_json() for phase in campaign.report.phases],
            "titles": [finding.probe.title for finding in campaign.report.findings],
        }


def measure_clean(name: str, budget: float, seed: int) -> dict[str, Any]:
    """One campaign against a clean target: every finding is a false claim."""
    with tempfile.TemporaryDirectory(prefix=f"measure-{name}-") as folder:
        with start(name, Path(folder) / "target") as running:
            campaign: Campaign = fuzz(running, Path(folder) / "out", budget=budget, seed=seed)
        report = campaign.report
        return {
            "target": running.name,
            "budget": budget,
            "findings": len(transcripts(campaign.out)),
            "titles": [finding.probe.title for finding in report.findings],
            "flaky": len(report.flaky),
            "campaign_seconds": round(report.seconds, 2),
            "connections": report.target.connections,
            "phases": [phase.to_json() for phase in report.phases],
            "stopped": report.stopped,
        }


def _phase_table(rows: list[dict[str, Any]]) -> list[str]:
    seconds: dict[str, list[float]] = defaultdict(list)
    connections: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        for phase in row["phases"]:
            seconds[phase["name"]].append(phase["seconds"])
            connections[phase["name"]].append(phase["connections"])
    lines = [f"{'phase':14} {'campaigns':>9} {'mean s':>8} {'max s':>8} {'mean conns':>10}"]
    for name in seconds:
        lines.append(
            f"{name:14} {len(seconds[name]):9d} {statistics.mean(seconds[name]):8.2f} "
            f"{max(seconds[name]):8.2f} {statistics.mean(connections[name]):10.1f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per flaw")
    parser.add_argument("--clean-budget", type=float, default=300.0, help="per clean target")
    parser.add_argument("--flaws", default="", help="comma-separated (default: all)")
    parser.add_argument("--clean-targets", default=",".join(CLEAN_TARGETS))
    parser.add_argument("--skip-flaws", action="store_true")
    parser.add_argument("--skip-clean", action="store_true")
    parser.add_argument("--seed", type=int, default=1, help="the fuzzer's seed")
    parser.add_argument("--jobs", type=int, default=1, help="campaigns run at once")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    args = parser.parse_args(argv)
    flaws = [f for f in args.flaws.split(",") if f] or list(FLAWS)
    unknown = sorted(set(flaws) - set(FLAWS))
    if unknown:
        parser.error(f"unknown flaws: {', '.join(unknown)}")
    results: dict[str, Any] = {"budget": args.budget, "clean_budget": args.clean_budget}
    failed = False
    if not args.skip_flaws:
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            jobs = [pool.submit(measure_flaw, flaw, args.budget, args.seed) for flaw in flaws]
            rows = []
            for job in jobs:
                row = job.result()
                rows.append(row)
                found = f"{row['time_to_find']:.1f}" if row["time_to_find"] is not None else "-"
                print(
                    f"{row['flaw']:32} {row['kind']:10} {'FOUND' if row['found'] else 'missed':6} "
                    f"t={found:>6} claimed={row['claimed']:2} "
                    f"campaign={row['campaign_seconds']:6.1f}s conns={row['connections']:4}",
                    flush=True,
                )
        results["flaws"] = rows
        found = [row for row in rows if row["found"]]
        times = [row["time_to_find"] for row in found if row["time_to_find"] is not None]
        print(f"\nplanted flaws found: {len(found)}/{len(rows)} within {args.budget:g} s")
        if times:
            print(
                f"time to find: median {statistics.median(times):.1f} s, "
                f"min {min(times):.1f} s, max {max(times):.1f} s"
            )
        missed = [row["flaw"] for row in rows if not row["found"]]
        print("missed: " + (", ".join(missed) or "none"))
        print("\nper phase, campaigns against flawed servers:")
        print("\n".join(_phase_table(rows)))
        failed |= bool(missed)
    if not args.skip_clean:
        clean_rows = []
        for name in [t for t in args.clean_targets.split(",") if t]:
            row = measure_clean(name, args.clean_budget, args.seed)
            clean_rows.append(row)
            print(
                f"{row['target']:24} budget={row['budget']:5.0f}s findings={row['findings']} "
                f"flaky={row['flaky']} campaign={row['campaign_seconds']:6.1f}s "
                f"conns={row['connections']} {row['titles']}",
                flush=True,
            )
            expected = 2 if name == "aiosmtpd-1.4.4" else 0
            failed |= row["findings"] != expected
        results["clean"] = clean_rows
        print("\nper phase, campaigns against clean servers:")
        print("\n".join(_phase_table(clean_rows)))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
