"""``Outcomes``: each message's outcome handed on in index order, to the caller's
``on_outcome`` or collected into ``send_many``'s list, alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.drivers.batch_outcomes import Outcome, Outcomes
from smtpproto.drivers.exceptions import SMTPConnectError


def _settle(outcomes: Outcomes, order: list[int]) -> list[Outcome]:
    made = [SMTPConnectError(f"message {index}") for index in range(len(order))]
    for _ in order:
        outcomes.reserve()
    for index in order:
        outcomes[index] = made[index]
    outcomes.finish()
    return made


@given(st.permutations(list(range(6))))
def test_collected_and_emitted_outcomes_come_in_index_order(order: list[int]) -> None:
    collected: list[Outcome] = []
    made = _settle(Outcomes(collect=collected), order)
    assert collected == made
    emitted: list[tuple[int, Outcome]] = []
    made = _settle(Outcomes(lambda index, outcome: emitted.append((index, outcome))), order)
    assert emitted == list(enumerate(made))


def test_an_outcome_settled_early_waits_for_the_ones_before_it() -> None:
    collected: list[Outcome] = []
    outcomes = Outcomes(collect=collected)
    first, second = outcomes.reserve(), outcomes.reserve()
    late = SMTPConnectError("second")
    outcomes[second] = late
    assert collected == []
    early = SMTPConnectError("first")
    outcomes[first] = early
    assert collected == [early, late]


def test_outcomes_take_exactly_one_destination() -> None:
    with pytest.raises(ValueError, match="emit callback or a list"):
        Outcomes()
    with pytest.raises(ValueError, match="emit callback or a list"):
        Outcomes(print, collect=[])
