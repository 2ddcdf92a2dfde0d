"""Running interleaved rounds: every row once per round, in a seeded shuffled order.

A ``Task`` is one row of one family (``client``, ``concurrency``, ``server``) with the
function that measures it once. ``run_rounds`` runs every task in every round, in an
order shuffled per round by ``random.Random(seed + round)`` (so a row is never always
first or always after the same neighbour, and a run can be repeated), records the
1-minute load average before and after each round, and prints one progress line per
round. A task that fails stops the run: a missing number would bias every ratio.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from measure import Sample

__all__ = ["Results", "Task", "run_rounds"]


@dataclasses.dataclass(frozen=True)
class Task:
    family: str
    row: str
    measure: Callable[[], Sample]


@dataclasses.dataclass
class Results:
    """Per family, one ``{row: Sample}`` per round; the load averages around each round."""

    rounds: dict[str, list[dict[str, Sample]]] = dataclasses.field(default_factory=dict)
    loads: list[tuple[tuple[float, float, float], tuple[float, float, float]]] = dataclasses.field(
        default_factory=list
    )
    orders: list[list[str]] = dataclasses.field(default_factory=list)

    def family(self, name: str) -> list[dict[str, Sample]]:
        return self.rounds.get(name, [])


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


def run_rounds(tasks: Sequence[Task], rounds: int, seed: int, out: TextIO = sys.stdout) -> Results:
    """Run every task ``rounds`` times, interleaved; see the module docstring."""
    results = Results({task.family: [] for task in tasks})
    for number in range(rounds):
        order = list(tasks)
        random.Random(seed + number).shuffle(order)
        start, began = _load(), time.monotonic()
        measured: dict[str, dict[str, Sample]] = {family: {} for family in results.rounds}
        for task in order:
            measured[task.family][task.row] = task.measure()
        end = _load()
        for family in results.rounds:  # rows in the tasks' order, whatever ran first
            samples = {t.row: measured[family][t.row] for t in tasks if t.family == family}
            results.rounds[family].append(samples)
        results.loads.append((start, end))
        results.orders.append([f"{task.family}:{task.row}" for task in order])
        print(
            f"round {number + 1}/{rounds}: {time.monotonic() - began:.1f} s, load average "
            f"{_triple(start)} at start, {_triple(end)} at end",
            file=out,
            flush=True,
        )
    return results


def _triple(load: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.2f}" for value in load)
