"""Summaries of interleaved rounds: medians, paired ratios, min-max spreads.

A *round* measures every row once; ``rounds`` is a list of ``{row: value}``. A paired
ratio compares two rows **within** one round (``row / reference``), so a machine that
slows down for a while slows both sides of each pair and the ratio survives; the
median over rounds says what is typical and the min-max says how far it moved. Nothing
here keeps a best-of: every round counts.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

__all__ = ["Spread", "paired", "per_row"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Spread:
    """The median of some values and their min and max."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def format(self, spec: str = ",.0f", suffix: str = "") -> str:
        """``median (min-max)``, each with the format ``spec``; the median alone when
        there was only one value."""
        median = f"{self.median:{spec}}{suffix}"
        if self.count == 1:
            return median
        return f"{median} ({self.low:{spec}}-{self.high:{spec}})"

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.count}


def per_row(
    rounds: Sequence[Mapping[str, T]], row: str, value: Callable[[T], float]
) -> Spread | None:
    """The spread of ``value(sample)`` for ``row`` over the rounds that measured it."""
    values = [value(measured[row]) for measured in rounds if row in measured]
    return Spread.of(values) if values else None


def paired(
    rounds: Sequence[Mapping[str, T]],
    row: str,
    reference: str,
    value: Callable[[T], float],
) -> Spread | None:
    """The spread of the per-round ratio ``value(row) / value(reference)``, over the
    rounds that measured both (``None`` when none did)."""
    ratios = [
        value(measured[row]) / value(measured[reference])
        for measured in rounds
        if row in measured and reference in measured and value(measured[reference]) > 0
    ]
    return Spread.of(ratios) if ratios else None
