"""Running interleaved rounds: every row once per round, in a seeded shuffled order.

A ``Task`` is one row of one family (``client``, ``concurrency``, ``server``) with the
function that measures it once. ``run_rounds`` runs every task in every round. Within a
round the rows of one family run back to back, so the rows a paired ratio compares are
seconds apart rather than a whole round apart (a family of 10 client rows takes a few
seconds; a round of all three families can take a minute on a loaded machine); the
order of the families rotates from round to round and the rows of each family are
shuffled by ``random.Random(seed + round)``, so no row is always first or always after
the same neighbour, and a run can be repeated. The 1-, 5- and 15-minute load averages
are recorded before and after each round, with one progress line per round. A task
that fails stops the run: a missing number would bias every ratio.
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
        order = _order(tasks, number, random.Random(seed + number))
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


def _order(tasks: Sequence[Task], number: int, rng: random.Random) -> list[Task]:
    """Round ``number``'s order: families rotated, each family's rows shuffled."""
    families = list(dict.fromkeys(task.family for task in tasks))
    shift = number % len(families) if families else 0
    order: list[Task] = []
    for family in families[shift:] + families[:shift]:
        rows = [task for task in tasks if task.family == family]
        rng.shuffle(rows)
        order += rows
    return order


def _triple(load: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.2f}" for value in load)
