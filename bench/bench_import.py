"""How long ``import smtpproto`` (and a client's imports) take against ``import smtplib``.

Each measurement is a fresh interpreter run as ``python -X importtime -c "import M"``;
the figure is the cumulative microseconds ``-X importtime`` reports for ``M`` itself
(what the statement cost, without the interpreter's start-up and ``site``). Rounds are
interleaved: every round measures ``smtplib`` and each target once, in an order that
rotates per round, and gives one paired ratio target / smtplib per target. The table
prints the median time, the median ratio, the spread of the ratios (min-max and the
middle half) and the load average before and after. No best-of: every round counts.

    .venv/bin/python bench/bench_import.py              # 41 rounds, about 20 s
    .venv/bin/python bench/bench_import.py --rounds 11  # quicker, noisier
    SMTPPROTO_NO_EXTENSIONS=1 .venv/bin/python bench/bench_import.py   # pure Python

``--modules`` lists what ``import smtpproto`` loaded of the package, for the reader.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

BASELINE = "smtplib"
TARGETS = (
    "smtpproto",
    "smtpproto.blocking",
    "smtpproto.asyncio_client",
    "smtpproto.server",
)
LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def import_time(module: str) -> int:
    """Cumulative microseconds of ``import module`` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for line in result.stderr.splitlines():
        match = LINE.match(line)
        if match and match.group(4) == module and match.group(3) == " ":
            return int(match.group(2))
    raise RuntimeError(f"-X importtime reported no top-level line for {module}")


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def loaded_modules(module: str) -> list[str]:
    code = (
        f"import sys, {module}; "
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('smtpproto'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--modules", action="store_true", help="list the modules loaded")
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    if args.modules:
        for target in targets:
            names = loaded_modules(target)
            print(f"import {target}: {len(names)} smtpproto modules: {' '.join(names)}")
        return
    load_before = os.getloadavg()
    for module in (BASELINE, *targets):  # warm the file cache and the .pyc files
        import_time(module)
    times: dict[str, list[int]] = {name: [] for name in (BASELINE, *targets)}
    ratios: dict[str, list[float]] = {name: [] for name in targets}
    order = [BASELINE, *targets]
    for round_number in range(args.rounds):
        shift = round_number % len(order)
        measured = {name: import_time(name) for name in order[shift:] + order[:shift]}
        for name, value in measured.items():
            times[name].append(value)
        for name in targets:
            ratios[name].append(measured[name] / measured[BASELINE])
    load_after = os.getloadavg()
    twins = "pure Python" if os.environ.get("SMTPPROTO_NO_EXTENSIONS") else "compiled"
    print(f"python {sys.version.split()[0]}, {args.rounds} interleaved rounds, twins: {twins}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print(f"{'import':28} {'median ms':>10} {'ratio':>7} {'min-max':>13} {'middle half':>13}")
    base = statistics.median(times[BASELINE]) / 1000
    print(f"{BASELINE:28} {base:10.1f} {'1.00':>7}")
    for name in targets:
        values = ratios[name]
        low, high = quartiles(values)
        print(
            f"{name:28} {statistics.median(times[name]) / 1000:10.1f} "
            f"{statistics.median(values):7.2f} "
            f"{min(values):6.2f}-{max(values):<6.2f} {low:6.2f}-{high:<6.2f}"
        )


if __name__ == "__main__":
    main()
