"""``slot_filler``: build instances of a plain slotted class from its slots' values.

The pure-Python reference; ``_speedups.pyx`` holds its compiled twin (selector:
``wire.twins``). The engine makes a few immutable values per message — a transaction's
``TransactionResult``, the ``ReadyForContent`` after each 354 — and a frozen dataclass's
constructor sets each field through ``object.__setattr__``. A filler made once per
class builds the same value with its slots filled directly: here through the slots' own
descriptors (``object.__new__`` then one ``__set__`` per field), in the compiled twin at
their offsets without calling Python code (about a quarter of this twin's cost).

Only for classes whose construction is nothing more than that: ``__new__`` is
``object.__new__`` and every name is a slot of the class or of a base class (the
``member_descriptor`` that attribute look-up finds first along the MRO: a base's slot
sits at the same offset in every subclass instance, so the server's events, whose
``unauthorized_pipelining`` is their base's slot, qualify); there is no
``__post_init__`` to skip. Anything else is a ``TypeError``
when the filler is made. Both twins check the same things in the same order, refuse
the same classes with the same messages, and build equal values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["slot_filler"]

T = TypeVar("T")
_MEMBER = type(type("_Probe", (), {"__slots__": ("x",)}).__dict__["x"])


def _plain_slots(cls: type[Any], names: Sequence[str]) -> list[Any]:
    """The member descriptors of ``names`` in ``cls``; ``TypeError`` when ``cls`` is not
    a plain slotted class or a name is not one of its own slots."""
    if not isinstance(cls, type):
        raise TypeError(f"SlotFiller needs a class, got {cls!r}")
    if cls.__new__ is not object.__new__:  # type: ignore[comparison-overlap]
        raise TypeError(f"{cls.__name__} has its own __new__")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} validates in __post_init__")
    names = list(names)
    if len(set(names)) != len(names):
        raise TypeError(f"{cls.__name__}: a slot is named twice")
    descriptors = []
    for name in names:
        if type(name) is not str:
            raise TypeError(f"{cls.__name__}: slot names are str, got {name!r}")
        # What ``cls().name`` finds: the first definition along the MRO.
        owner = next((klass for klass in cls.__mro__ if name in klass.__dict__), None)
        descriptor: Any = None if owner is None else owner.__dict__[name]
        if type(descriptor) is not _MEMBER or descriptor.__objclass__ is not owner:
            raise TypeError(f"{cls.__name__}: {name!r} is not a slot of the class or its bases")
        descriptors.append(descriptor)
    return descriptors


def slot_filler(cls: type[T], names: Sequence[str]) -> Callable[..., T]:
    """A callable: ``(*values)`` -> an instance of ``cls`` whose slots ``names`` hold
    ``values``, in that order (other slots stay unset); a wrong number of values is a
    ``TypeError``. One, two and five slots (the engine's per-message events) get a
    function without a loop."""
    setters = tuple(descriptor.__set__ for descriptor in _plain_slots(cls, names))
    new = object.__new__
    count = len(setters)
    if count == 1:
        (set0,) = setters

        def fill1(value0: object) -> T:
            made: T = new(cls)
            set0(made, value0)
            return made

        return fill1
    if count == 2:
        set0, set1 = setters

        def fill2(value0: object, value1: object) -> T:
            made: T = new(cls)
            set0(made, value0)
            set1(made, value1)
            return made

        return fill2
    if count == 5:
        set0, set1, set2, set3, set4 = setters

        def fill5(
            value0: object, value1: object, value2: object, value3: object, value4: object
        ) -> T:
            made: T = new(cls)
            set0(made, value0)
            set1(made, value1)
            set2(made, value2)
            set3(made, value3)
            set4(made, value4)
            return made

        return fill5

    def fill(*values: object) -> T:
        if len(values) != count:
            raise TypeError(f"{cls.__name__} takes {count} values, got {len(values)}")
        made: T = new(cls)
        for setter, value in zip(setters, values, strict=True):
            setter(made, value)
        return made

    return fill
