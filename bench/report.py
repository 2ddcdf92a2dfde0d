"""The tables ``bench_speed.py`` prints, from the rounds it ran (Markdown, so they paste
into bench/README.md and the issue as they are).

Every ratio is a paired ratio: the two rows' values from the same round divided, then
the median over the rounds with the min-max in brackets. Rates and CPU times are the
median over the rounds, same brackets. No best-of anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from measure import Sample
from rounds import Results
from stats import Spread, paired, per_row

__all__ = ["client_table", "concurrency_table", "issue_table", "load_lines", "server_table"]

Rounds = Sequence[Mapping[str, Sample]]


def rate(sample: Sample) -> float:
    return sample.rate


def cpu_us(sample: Sample) -> float:
    return sample.cpu_per_message * 1e6


def wall_us(sample: Sample) -> float:
    return sample.wall / sample.messages * 1e6


def cores(sample: Sample) -> float:
    """CPU seconds per wall second: how many cores the measured side kept busy."""
    return sample.cpu / sample.wall


def client_cores(sample: Sample) -> float:
    """The client's CPU seconds per wall second (a server row's smtp-source)."""
    return sample.extra["client_cpu"] / sample.wall


def machine_cores(sample: Sample) -> float:
    """The whole machine's CPU seconds per wall second (other jobs included)."""
    return sample.extra.get("machine_cpu", 0.0) / sample.wall


def server_share(sample: Sample) -> float:
    """The server's cores busy over the cores nobody else kept busy in that span (the
    CPU count less smtp-source's and other jobs' cores): 1.00 is every core left to it.
    The machine's CPU comes in 10 ms ticks, so a short run is a coarse figure."""
    others = (sample.extra.get("machine_cpu", 0.0) - sample.cpu) / sample.wall
    left = (os.cpu_count() or 1) - others
    return cores(sample) / left if left > 0 else 0.0


def client_cpu_us(sample: Sample) -> float:
    return sample.extra["client_cpu"] / sample.messages * 1e6


def rss_kib(sample: Sample) -> float:
    return sample.extra["rss_open_per_connection"] / 1024


def heap_kib(sample: Sample) -> float:
    return sample.extra["heap_open_per_connection"] / 1024


def _show(spread: Spread | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "n/a" if spread is None else spread.format(spec, suffix)


def _ratio(rounds: Rounds, row: str, ref: str, value: Callable[[Sample], float] = rate) -> str:
    return _show(paired(rounds, row, ref, value), ".2f", "x")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def client_table(rounds: Rounds, references: Sequence[str]) -> list[str]:
    """One connection: rate, CPU and wall per message, ratios against each reference."""
    names = list(rounds[0]) if rounds else []
    refs = [ref for ref in references if ref in names]
    header = ["row", "msg/s", "client CPU µs/msg", "wall µs/msg"]
    header += [f"vs {ref}" for ref in refs] + ["CPU ÷ floor's"]
    body = []
    for name in names:
        cells = [
            name,
            _show(per_row(rounds, name, rate)),
            _show(per_row(rounds, name, cpu_us), ".1f"),
            _show(per_row(rounds, name, wall_us), ".1f"),
        ]
        cells += [_ratio(rounds, name, ref) for ref in refs]
        cells.append(_ratio(rounds, name, "floor", cpu_us) if "floor" in names else "n/a")
        body.append(cells)
    return _table(header, body)


def concurrency_table(rounds: Rounds, reference: str, levels: Sequence[int]) -> list[str]:
    """N connections: rate, CPU, memory per open connection (RSS, traced heap), ratios
    against the reference at the same N (rows are keyed ``"ROW xN"``)."""
    names = list(dict.fromkeys(key.rsplit(" x", 1)[0] for key in (rounds[0] if rounds else {})))
    header = ["row", "N", "msg/s", "CPU µs/msg", "RSS KiB/conn", "heap KiB/conn"]
    header += [f"msg/s vs {reference}", f"heap vs {reference}"]
    body = []
    for level in levels:
        ref = f"{reference} x{level}"
        for name in names:
            key = f"{name} x{level}"
            body.append(
                [
                    name,
                    str(level),
                    _show(per_row(rounds, key, rate)),
                    _show(per_row(rounds, key, cpu_us), ".1f"),
                    _show(per_row(rounds, key, rss_kib), ".1f"),
                    _show(per_row(rounds, key, heap_kib), ".1f"),
                    _ratio(rounds, key, ref),
                    _ratio(rounds, key, ref, heap_kib),
                ]
            )
    return _table(header, body)


def server_table(rounds: Rounds, pairs: Mapping[str, str]) -> list[str]:
    """smtp-source into each server: rate, server CPU, ratios against smtp-sink and the
    row's counterpart in ``pairs``."""
    names = list(rounds[0]) if rounds else []
    header = ["server", "msg/s", "server CPU µs/msg", "server cores busy"]
    header += ["smtp-source CPU µs/msg", "smtp-source cores busy", "machine cores busy"]
    header += ["server ÷ cores left", "vs smtp-sink", "vs counterpart"]
    body = []
    for name in names:
        other = pairs.get(name)
        versus = "" if other is None else f"{_ratio(rounds, name, other)} {other}"
        body.append(
            [
                name,
                _show(per_row(rounds, name, rate)),
                _show(per_row(rounds, name, cpu_us), ".1f"),
                _show(per_row(rounds, name, cores), ".2f"),
                _show(per_row(rounds, name, client_cpu_us), ".1f"),
                _show(per_row(rounds, name, client_cores), ".2f"),
                _show(per_row(rounds, name, machine_cores), ".2f"),
                _show(per_row(rounds, name, server_share), ".2f"),
                _ratio(rounds, name, "smtp-sink"),
                versus,
            ]
        )
    return _table(header, body)


def load_lines(results: Results) -> list[str]:
    """The load average (1, 5, 15 min) at the start and end of every round."""
    lines = []
    for number, (start, end) in enumerate(results.loads, 1):
        lines.append(
            f"round {number}: load average {'/'.join(f'{v:.2f}' for v in start)} at start, "
            f"{'/'.join(f'{v:.2f}' for v in end)} at end"
        )
    ones = [load[0] for pair in results.loads for load in pair]
    if ones:
        lines.append(f"1-minute load average over the run: {min(ones):.2f}-{max(ones):.2f}")
    return lines


def issue_table(
    results: Results,
    workers_row: str,
    workers_note: str | None,
    wide: tuple[str, str] | None = None,
) -> list[str]:
    """Issue 14's table with a "measured" column from this run; ``wide`` is the workers
    row fed by more sessions and its single-process counterpart."""
    client = results.family("client")
    concurrency = results.family("concurrency")
    server = results.family("server")

    def vs_floor(row: str) -> str:
        return f"{_ratio(client, row, 'floor')} the floor"

    blocking = (
        f"{vs_floor('blocking send_many')}; client CPU "
        f"{_show(per_row(client, 'blocking send_many', cpu_us), '.1f')} µs/msg vs the floor's "
        f"{_show(per_row(client, 'floor', cpu_us), '.1f')} "
        f"({_ratio(client, 'blocking send_many', 'floor', cpu_us)})"
    )
    levels = sorted(
        {int(key.rsplit(" x", 1)[1]) for key in (concurrency[0] if concurrency else {})}
    )
    concurrent = "; ".join(
        f"N={n}: {_ratio(concurrency, f'asyncio send_many x{n}', f'aiosmtplib x{n}')}"
        for n in levels
    )
    if levels:
        top = levels[-1]

        def memory(figure: Callable[[Sample], float]) -> str:
            ours = _show(per_row(concurrency, f"asyncio send_many x{top}", figure), ".1f")
            theirs = _show(per_row(concurrency, f"aiosmtplib x{top}", figure), ".1f")
            return f"{ours} vs {theirs} KiB"

        concurrent += (
            f"; per connection at N={top}: heap {memory(heap_kib)} "
            f"(tracemalloc), RSS {memory(rss_kib)}"
        )
    builtin = (
        f"{_show(per_row(server, 'built-in (drop)', rate))} msg/s, "
        f"{_show(per_row(server, 'built-in (drop)', cpu_us), '.1f')} µs server CPU/msg; "
        f"smtp-sink {_show(per_row(server, 'smtp-sink', rate))} msg/s; "
    )
    if workers_note is None:
        builtin += (
            f"{workers_row}: {_show(per_row(server, workers_row, rate))} msg/s, "
            f"{_ratio(server, workers_row, 'serve --maildir')} serve --maildir, "
            f"{_show(per_row(server, workers_row, cores), '.2f')} cores busy "
            f"(serve --maildir: {_show(per_row(server, 'serve --maildir', cores), '.2f')})"
        )
        if wide is not None:
            row, single = wide
            builtin += (
                f"; {row}: {_ratio(server, row, single)} {single}, "
                f"{_show(per_row(server, row, cores), '.2f')} cores busy, smtp-source "
                f"{_show(per_row(server, row, client_cores), '.2f')}, the machine "
                f"{_show(per_row(server, row, machine_cores), '.2f')} of "
                f"{os.cpu_count() or 1}; the server used "
                f"{_show(per_row(server, row, server_share), '.2f')} of the cores "
                "smtp-source and other jobs left it"
            )
    else:
        builtin += f"multi-process: not measured ({workers_note})"
    rows = [
        (
            "blocking `send_many` vs a raw pipelined-socket floor",
            "0.64-0.77x quiet, 0.27-0.41x under load; 34-85 µs CPU/msg vs 9-37 µs",
            "≥ 1.0x, CPU/msg ≤ 1.5x the floor's",
            blocking,
        ),
        (
            "asyncio `send_many` vs the same floor",
            "0.62-0.69x quiet, 0.13-0.22x under load",
            "≥ 0.8x",
            vs_floor("asyncio send_many"),
        ),
        ("trio `send_many` vs the same floor", "0.16-0.66x", "≥ 0.8x", vs_floor("trio send_many")),
        (
            "asyncio, concurrent clients vs aiosmtplib the same way",
            "2.2x at 100 (3.3x at 1); 15.6 KB RSS/conn vs 9.0 KB",
            "≥ 3x at every N; ≤ aiosmtplib's memory per connection",
            concurrent,
        ),
        (
            "built-in server (messages dropped) from `smtp-source -d -s 4 -l 1024`",
            "4,900 msg/s, 178-198 µs server CPU/msg; smtp-sink 27,062",
            "≤ 60 µs/msg; a multi-process mode that uses every core",
            builtin,
        ),
        (
            "`smtpproto serve --maildir` vs aiosmtpd storing the same",
            "1.02-1.12x",
            "≥ 2x",
            f"{_ratio(server, 'serve --maildir', 'aiosmtpd maildir')} (msg/s, paired)",
        ),
    ]
    return _table(["row", "now (issue 14)", "target", "measured (median (min-max))"], rows)
