"""``slot_filler`` twins (``wire._slots_py`` and its compiled twin in ``_speedups``):
the same values for the same classes, the same refusals with the same messages.

Every test runs against both twins (a missing compiled build fails, as for the parser
twins); the engine's per-message events are made with the selected one
(``client_engine.events.positional``)."""

from __future__ import annotations

import copy
import dataclasses
import gc
import pickle
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest_datacodec import twin_params
from smtpproto.client_engine.commands import Rset
from smtpproto.client_engine.events import (
    CommandReply,
    ReadyForContent,
    TransactionResult,
    positional,
)
from smtpproto.wire.reply import Reply
from smtpproto.wire.twins import c_slot_filler, py_slot_filler, slot_filler

Filler = Callable[[type[Any], Sequence[str]], Callable[..., Any]]
FILLERS = twin_params(py_slot_filler, c_slot_filler)  # type: ignore[arg-type]


@pytest.fixture(params=FILLERS)
def filler(request: pytest.FixtureRequest) -> Filler:
    return request.param  # type: ignore[no-any-return]


@dataclasses.dataclass(frozen=True, slots=True)
class Three:
    a: object
    b: object
    c: object


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


class OwnNew:
    __slots__ = ("x",)

    def __new__(cls) -> OwnNew:
        return object.__new__(cls)


class Base:
    __slots__ = ("inherited",)


class Child(Base):
    __slots__ = ("own",)


class Shadowed(Base):
    """A subclass whose class attribute hides the base's slot: not a slot any more."""

    __slots__ = ()
    inherited = 1


class Plain:
    __slots__ = ("x", "y")


class WithDict:
    x = 1


REPLY = Reply(250, (b"2.0.0 Ok",))
GO = Reply(354, (b"go ahead",))


def fields(cls: Any) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (TransactionResult, ("s@example.org", REPLY, (("r@example.org", REPLY),), REPLY, ())),
        (ReadyForContent, (GO,)),
        (CommandReply, (Rset(), REPLY)),
        (Three, (1, None, "three")),
    ],
)
def test_the_value_is_the_constructors(filler: Filler, cls: Any, values: tuple[Any, ...]) -> None:
    made = filler(cls, fields(cls))(*values)
    names = fields(cls)
    expected = cls(**dict(zip(names, values, strict=True)))
    assert type(made) is cls
    assert made == expected and hash(made) == hash(expected)
    assert repr(made) == repr(expected)
    for name, value in zip(names, values, strict=True):
        assert getattr(made, name) is value
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.__setattr__(names[0], None)


def test_slots_of_a_base_class_are_filled_too(filler: Filler) -> None:
    made = filler(Child, ["own", "inherited"])(1, 2)
    assert type(made) is Child
    assert (made.own, made.inherited) == (1, 2)


def test_slots_left_out_stay_unset(filler: Filler) -> None:
    made = filler(Plain, ["y"])(5)
    assert made.y == 5
    with pytest.raises(AttributeError):
        made.x  # noqa: B018


@pytest.mark.parametrize("count", [0, 1, 2, 4])
def test_a_wrong_number_of_values_is_refused(filler: Filler, count: int) -> None:
    make = filler(Three, ["a", "b", "c"])
    with pytest.raises(TypeError, match="Three takes 3 values"):
        make(*range(count))


@pytest.mark.parametrize(
    ("cls", "names", "message"),
    [
        (Checked, ["value"], "validates in __post_init__"),
        (OwnNew, ["x"], "has its own __new__"),
        (Shadowed, ["inherited"], "'inherited' is not a slot of the class or its bases"),
        (Plain, ["x", "z"], "'z' is not a slot of the class or its bases"),
        (WithDict, ["x"], "'x' is not a slot of the class or its bases"),
        (Plain, ["x", "x"], "a slot is named twice"),
        (Plain, [b"x"], "slot names are str"),
        (len, ["x"], "needs a class"),
    ],
)
def test_what_is_refused(filler: Filler, cls: Any, names: list[Any], message: str) -> None:
    with pytest.raises(TypeError) as refused:
        filler(cls, names)
    assert message in str(refused.value)
    with pytest.raises(TypeError) as reference:
        py_slot_filler(cls, names)
    assert str(refused.value) == str(reference.value)


@given(
    values=st.lists(
        st.one_of(st.none(), st.integers(), st.binary(), st.text()), min_size=3, max_size=3
    )
)
def test_the_twins_agree_on_any_values(values: list[Any]) -> None:
    for make in (py_slot_filler, slot_filler):
        made = make(Three, ["a", "b", "c"])(*values)
        assert made == Three(*values)


def test_references_are_kept_and_released(filler: Filler) -> None:
    make = filler(Three, ["a", "b", "c"])
    value = object()
    before = sys.getrefcount(value)
    made = [make(value, value, value) for _ in range(100)]
    assert sys.getrefcount(value) == before + 300
    del made
    gc.collect()
    assert sys.getrefcount(value) == before


def test_a_cycle_through_a_made_value_is_collected(filler: Filler) -> None:
    make = filler(Three, ["a", "b", "c"])
    holder: list[Any] = []
    made = make(holder, None, None)
    holder.append(made)
    del made, holder
    gc.collect()
    assert not [obj for obj in gc.get_objects() if type(obj) is Three]


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_a_filler_copies_as_itself_and_refuses_pickling(filler: Filler, count: int) -> None:
    """A filler is immutable: ``copy.copy`` and ``deepcopy`` give the filler itself in
    both twins (the Python twin's is a function); neither pickles (the Python twin's is
    a local function, which pickle refuses with its own exception for the version)."""
    make = filler(Fields5, ["a", "b", "c", "d", "e"][:count])
    assert copy.copy(make) is make
    assert copy.deepcopy(make) is make
    assert copy.deepcopy([make, make]) == [make, make]
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        pickle.dumps(make)


@dataclasses.dataclass(frozen=True, slots=True)
class Fields5:
    a: object = None
    b: object = None
    c: object = None
    d: object = None
    e: object = None


def test_the_engine_uses_the_selected_twin() -> None:
    from smtpproto.client_engine import replies, session

    made = replies._ready_for_content(GO)
    assert made == ReadyForContent(reply=GO) and type(made) is ReadyForContent
    assert positional(ReadyForContent)(GO) == made  # the Python reference by default
    expected_type = type(slot_filler(Three, ["a"]))
    assert type(session._transaction_result) is expected_type
    assert type(replies._ready_for_content) is expected_type
    with pytest.raises(TypeError, match="validates in __post_init__"):
        positional(Checked)  # type: ignore[type-var]
