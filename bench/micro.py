"""Interleaved rounds for the in-process micro-benchmarks (replies, DATA codec, engine).

Each row is a function that measures once and returns a rate (things per second). A
round runs every row once, in an order shuffled by ``random.Random(seed + round)``, so
no row always runs first or always after the same neighbour; the load averages before
and after each round are printed. ``paired_ratio`` divides two rows of the *same* round
and summarises the ratios over the rounds (median, min-max): a machine that slows down
for a while slows both sides of a pair. Every round counts: nothing keeps a best-of.

``rate_for`` turns one call of a workload into a rate by repeating it for about a
time budget (at least ``minimum`` times) and dividing the work done by the *total* time
spent, so a slow repetition weighs in like any other.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from stats import Spread, paired, per_row

__all__ = ["load_line", "paired_ratio", "rate_for", "run_interleaved", "spread_of"]

Rounds = Sequence[Mapping[str, float]]


def _same(value: float) -> float:
    return value


def rate_for(run: Callable[[], object], work: float, budget: float, minimum: int = 3) -> float:
    """``work`` units per second over repetitions of ``run`` for about ``budget`` s."""
    spent, repeats = 0.0, 0
    while repeats < minimum or spent < budget:
        began = time.perf_counter()
        run()
        spent += time.perf_counter() - began
        repeats += 1
    return work * repeats / spent


def load_line() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def run_interleaved(
    rows: Mapping[str, Callable[[], float]],
    rounds: int,
    seed: int = 0,
    out: TextIO = sys.stdout,
) -> list[dict[str, float]]:
    """Every row once per round, shuffled per round; one progress line per round."""
    if rounds < 1:
        raise ValueError("at least one round")
    results: list[dict[str, float]] = []
    for number in range(rounds):
        order = list(rows)
        random.Random(seed + number).shuffle(order)
        start, began = load_line(), time.monotonic()
        measured = {name: rows[name]() for name in order}
        results.append({name: measured[name] for name in rows})  # the rows' own order
        print(
            f"round {number + 1}/{rounds}: {time.monotonic() - began:.1f} s, "
            f"load average {start} at start, {load_line()} at end",
            file=out,
            flush=True,
        )
    return results


def spread_of(rounds: Rounds, row: str) -> Spread:
    """The median and min-max of ``row``'s value over the rounds."""
    spread = per_row(rounds, row, _same)
    if spread is None:
        raise KeyError(row)
    return spread


def paired_ratio(rounds: Rounds, row: str, reference: str) -> Spread | None:
    """The per-round ratio ``row / reference`` summarised over the rounds (None when
    ``reference`` was not measured)."""
    return paired(rounds, row, reference, _same)
