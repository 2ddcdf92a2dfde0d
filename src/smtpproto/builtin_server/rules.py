"""Rules that make the built-in server fail on purpose: the typed rule API.

Adapter layer (no I/O; reads the clock only through the injectable ``clock``). A test
server that accepts everything cannot test a client's 550 or 4xx handling, so the
``Session`` (``backend.py``) asks a ``RuleSet`` first, at every *stage* of a session:

======== ============================================ ==================================
stage    when                                         what it may match
======== ============================================ ==================================
connect  the connection opens (the greeting)          connection
helo     EHLO, HELO or LHLO                           connection
mail     MAIL FROM                                    sender, connection, message
rcpt     RCPT TO                                      sender, recipient, ...
data     DATA (before the 354)                        sender, ...
bdat     a BDAT chunk that is not the last            sender, ...
data_end the final dot, or BDAT LAST                  sender, recipient (LMTP: each one)
auth     AUTH (the command, not later SASL lines)     connection
starttls STARTTLS                                     connection
======== ============================================ ==================================

A ``Rule`` names what it matches (``stage``, ``sender``, ``recipient`` — an exact
address, or a compiled regular expression matched with ``fullmatch``, both without
regard to case — the ``connection`` and ``message`` numbers, counted per server from 1,
a message being numbered by its MAIL command) and what then happens (``action``) after
an optional ``delay`` in seconds. Rules are tried in order and the first that matches
decides; ``times`` limits how often a rule may fire (counted per server). When no rule
matches, the ``hook`` (a callable taking the ``Context``) may decide; else the
``Session``'s own hooks answer as usual.

Actions: ``Accept()`` (the normal answer, useful with ``delay`` or to shield later
rules), ``Respond(code, text, enhanced=...)`` (any 2yz/4yz/5yz reply the stage can
have, RFC 5321 §4.2, §4.3.2; the enhanced code is RFC 3463's and its class must match),
``Greylist(retry_after)`` (451 4.7.1 for a new (client IP, sender, recipient) triplet
until ``retry_after`` seconds have passed since it was first seen), ``Disconnect()``
(421 and close, RFC 5321 §3.8 — mid-transaction too), ``Drop()`` (close without a
reply; after the final dot this is the "delivery status unknown" case, RFC 1047, and
by default the message *was* kept) and ``Tarpit(delay, step)`` (every later reply of
the connection is slowed down, by ``step`` more each time). ``Respond`` at ``auth``
refuses AUTH (535 5.7.8, 454 4.7.0, 534 5.7.9 ...); at ``data_end`` of an LMTP server it
fails one recipient (RFC 2033 §4.2). Every value is checked when the rule is made: a
bad rule is a ``ValueError`` (or ``TypeError``) that says which field is wrong.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import threading
import time  # noqa: TID251  (adapter layer: the default clock for greylisting)
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, TypeVar, get_args

from ..server_engine.events import (
    AuthRequested,
    ChunkComplete,
    DataRequested,
    EhloReceived,
    HeloReceived,
    MailReceived,
    MessageComplete,
    RcptReceived,
    ServerEvent,
    StartTLSRequested,
)
from ..server_engine.states import code_allowed
from ..wire.reply import EnhancedStatusCode, Reply

__all__ = [
    "STAGES",
    "Accept",
    "Action",
    "Context",
    "Disconnect",
    "Drop",
    "Greylist",
    "Hook",
    "Respond",
    "Rule",
    "RuleSet",
    "Stage",
    "Tarpit",
    "by_type",
    "keeps_message",
    "stage_of",
]

Stage = Literal["connect", "helo", "mail", "rcpt", "data", "bdat", "data_end", "auth", "starttls"]
#: Every stage a rule may name, in the order a session meets them.
STAGES: tuple[str, ...] = get_args(Stage)

#: The engine's name (``server_engine.states.code_allowed``) of what each stage answers.
_KIND = {
    "connect": "greeting",
    "helo": "ehlo",
    "mail": "mail",
    "rcpt": "rcpt",
    "data": "data",
    "bdat": "chunk",
    "data_end": "message",
    "auth": "auth",
    "starttls": "starttls",
}
#: Stages where a 2yz from a rule would skip what the 2yz means (extensions, 354 content,
#: a TLS handshake, a login without credentials): only 4yz/5yz are allowed there.
_NO_SUCCESS = frozenset({"helo", "data", "auth", "starttls"})
#: Stages whose replies get no default enhanced code (RFC 2034 §4).
_NO_ENHANCED = frozenset({"connect", "helo"})
#: Stages that know the sender, and those that know a recipient.
_SENDER_STAGES = frozenset({"mail", "rcpt", "data", "bdat", "data_end"})
_RECIPIENT_STAGES = frozenset({"rcpt", "data_end"})
#: The longest reply text a rule may give (the whole line stays under RFC 5321
#: §4.5.3.1.5's 512 octets).
MAX_TEXT = 400
#: The longest delay a rule may ask for, in seconds (a test server, not a prison).
MAX_DELAY = 3600.0
#: Greylisting triplets remembered per server; the oldest is forgotten first.
MAX_TRIPLETS = 100_000


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{what} is longer than {MAX_TEXT} characters")
    if not (value.isascii() and value.isprintable()):
        raise ValueError(f"{what} must be printable ASCII (no CR, LF or other controls): {value!r}")
    return value


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and 0 <= value <= MAX_DELAY):
        raise ValueError(f"{what} must be from 0 to {MAX_DELAY:g} seconds, got {value!r}")
    return float(value)


def _count(value: object, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{what} counts from 1, got {value}")


# -- actions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    """The normal answer of the ``Session`` (with a rule's ``delay``: a slow reply)."""


@dataclass(frozen=True, slots=True)
class Respond:
    """Reply ``code`` with ``text``, prefixed by the RFC 3463 ``enhanced`` code (by
    default ``X.0.0`` of the code's class, none at stages connect and helo; ``""`` for
    none). 421 is ``Disconnect``."""

    code: int
    text: str = "Refused by a test rule"
    enhanced: str | None = None

    def __post_init__(self) -> None:
        code = self.code
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"code must be an int, got {type(code).__name__}")
        if not 200 <= code <= 599 or 300 <= code < 400:
            raise ValueError(f"code must be 2yz, 4yz or 5yz (3yz belong to the protocol): {code}")
        if code == 421:
            raise ValueError("421 closes the connection: use Disconnect() instead of Respond(421)")
        _text(self.text, "text")
        if self.enhanced is not None and self.enhanced != "":
            enhanced = _text(self.enhanced, "enhanced")
            try:
                parsed = EnhancedStatusCode.parse(enhanced)
            except ValueError:
                raise ValueError(f"enhanced must be like 5.1.1 (RFC 3463): {enhanced!r}") from None
            if parsed.class_ != code // 100:
                raise ValueError(f"enhanced code {enhanced} does not match the class of {code}")

    def reply(self, stage: Stage | None = None) -> Reply:
        """This answer as a ``Reply`` at ``stage``. The greeting and the replies to
        EHLO/HELO carry no enhanced code unless one is given (RFC 2034 §4: the client
        does not know ENHANCEDSTATUSCODES yet)."""
        enhanced = self.enhanced
        if enhanced is None:
            enhanced = "" if stage in _NO_ENHANCED else f"{self.code // 100}.0.0"
        text = f"{enhanced} {self.text}" if enhanced else self.text
        return Reply(self.code, (text.encode("ascii"),))


@dataclass(frozen=True, slots=True)
class Greylist:
    """451 4.7.1 the first time a (client IP, sender, recipient) triplet is seen, and
    until ``retry_after`` seconds later; the normal answer from then on (stage rcpt)."""

    retry_after: float = 300.0
    text: str = "Greylisted, please try again later"

    def __post_init__(self) -> None:
        _seconds(self.retry_after, "retry_after")
        _text(self.text, "text")

    def reply(self) -> Reply:
        """The 451 of a triplet still greylisted."""
        return Reply(451, (f"4.7.1 {self.text}".encode("ascii"),))


@dataclass(frozen=True, slots=True)
class Disconnect:
    """421 (RFC 5321 §3.8) with ``text``, then close the connection; at ``data_end`` the
    message is not kept."""

    text: str = "Service shutting down, closing transmission channel"
    enhanced: str = "4.3.2"

    def __post_init__(self) -> None:
        Respond(451, self.text, self.enhanced)  # the same checks as a 4yz reply

    def reply(self) -> Reply:
        """The 421."""
        text = f"{self.enhanced} {self.text}" if self.enhanced else self.text
        return Reply(421, (text.encode("ascii"),))


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without a reply. At ``data_end`` the message is kept when
    ``deliver`` (the client cannot know: "delivery status unknown", RFC 1047)."""

    deliver: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.deliver, bool):
            raise TypeError(f"deliver must be a bool, got {type(self.deliver).__name__}")


@dataclass(frozen=True, slots=True)
class Tarpit:
    """Answer normally, but from this reply on delay every reply of the connection:
    ``delay`` seconds, ``step`` more for each reply after that (capped at ``MAX_DELAY``)."""

    delay: float = 1.0
    step: float = 0.0

    def __post_init__(self) -> None:
        _seconds(self.delay, "delay")
        _seconds(self.step, "step")


Action: TypeAlias = Accept | Respond | Greylist | Disconnect | Drop | Tarpit
_ACTIONS = (Accept, Respond, Greylist, Disconnect, Drop, Tarpit)


_T = TypeVar("_T")


def by_type(table: Mapping[type[ServerEvent], _T], event: ServerEvent) -> _T | None:
    """``table``'s entry for the class of ``event`` or its nearest base; ``None`` when
    there is none. One dictionary look-up for the engine's own event classes."""
    found = table.get(type(event))
    if found is not None:
        return found
    for cls in type(event).__mro__[1:]:
        found = table.get(cls)
        if found is not None:
            return found
    return None


#: The stage at which each event is decided; commands rules skip have none.
_STAGES: Mapping[type[ServerEvent], Stage] = {
    EhloReceived: "helo",
    HeloReceived: "helo",
    MailReceived: "mail",
    RcptReceived: "rcpt",
    DataRequested: "data",
    ChunkComplete: "bdat",
    MessageComplete: "data_end",
    AuthRequested: "auth",
    StartTLSRequested: "starttls",
}


def stage_of(event: ServerEvent) -> Stage | None:
    """The stage at which ``event`` is decided, ``None`` for commands rules skip."""
    return by_type(_STAGES, event)


def keeps_message(action: Action | None) -> bool:
    """Whether the message is kept when ``action`` decides its end of data."""
    if isinstance(action, Respond):
        return action.code < 300
    if isinstance(action, Drop):
        return action.deliver
    return not isinstance(action, Disconnect)


# -- what a rule sees ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Context:
    """What is known at one stage of one session, for rules and the ``hook``.

    ``connection`` and ``message`` are the server's counts (from 1; ``message`` is 0
    before the first MAIL of the connection); ``recipient`` is the RCPT address at
    ``rcpt`` and, on an LMTP server, the recipient being answered at ``data_end``;
    ``recipients`` the accepted ones so far.
    """

    stage: Stage
    peer: str
    connection: int
    message: int = 0
    sender: str | None = None
    recipient: str | None = None
    recipients: tuple[str, ...] = ()
    client_name: str | None = None
    event: ServerEvent | None = None


#: Decides what no rule matched: an ``Action``, or ``None`` for the normal answer.
Hook: TypeAlias = Callable[[Context], Action | None]

Address: TypeAlias = str | re.Pattern[str]


def _address(value: object, what: str) -> None:
    if value is None:
        return
    if isinstance(value, re.Pattern):
        if not isinstance(value.pattern, str):  # addresses are str: it could never match
            raise TypeError(f"{what} must be a str pattern, not a bytes one: {value!r}")
        return
    if not isinstance(value, str):
        raise TypeError(f"{what} must be an address (str) or re.compile(...) pattern")
    if not value.isprintable() or len(value) > 512:
        raise ValueError(f"{what} must be printable, at most 512 characters: {value!r}")


def _folded(address: str) -> str:
    """``address`` compared without regard to case, its domain as A-labels: a client
    without SMTPUTF8 sends ``xn--bcher-kva.example`` for ``bücher.example`` (RFC 5890)."""
    local, at, domain = address.rpartition("@")
    if at and not domain.isascii():
        with contextlib.suppress(UnicodeError):  # not a valid IDN: compared as it is
            domain = domain.encode("idna").decode("ascii")
    return f"{local}{at}{domain}".casefold()


def _matches(want: Address | None, address: str | None) -> bool:
    if want is None:
        return True
    if address is None:
        return False
    if isinstance(want, str):
        return _folded(want) == _folded(address)
    # Without regard to case, like a str and a rule file's pattern (domains are
    # case-insensitive, RFC 5321 §2.4); ``re`` caches the compiled variant.
    return re.fullmatch(want.pattern, address, want.flags | re.IGNORECASE) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """When a session is at ``stage`` (any stage when ``None``) and everything given
    matches, wait ``delay`` seconds and do ``action``; at most ``times`` times per
    server when given. See the module docstring for the stages and actions."""

    stage: Stage | None = None
    sender: Address | None = None
    recipient: Address | None = None
    connection: int | None = None
    message: int | None = None
    times: int | None = None
    action: Action = field(default_factory=Accept)
    delay: float = 0.0

    def __post_init__(self) -> None:
        stage = self.stage
        if stage is not None and stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        if not isinstance(self.action, _ACTIONS):
            names = ", ".join(kind.__name__ for kind in _ACTIONS)
            raise TypeError(f"action must be one of {names}, got {self.action!r}")
        _address(self.sender, "sender")
        _address(self.recipient, "recipient")
        for name in ("connection", "message", "times"):
            _count(getattr(self, name), name)
        _seconds(self.delay, "delay")
        self._check_stage()

    def _check_stage(self) -> None:
        """Refuse a rule that can never match, or an action its stage cannot take."""
        stage, action = self.stage, self.action
        if self.sender is not None and stage is not None and stage not in _SENDER_STAGES:
            raise ValueError(f"a sender is not known at stage {stage!r}")
        if self.recipient is not None and stage is not None and stage not in _RECIPIENT_STAGES:
            raise ValueError(
                f"a recipient is known only at stages rcpt and data_end, not {stage!r}"
            )
        if self.message is not None and stage is not None and stage not in _SENDER_STAGES:
            raise ValueError(f"a message number is not known at stage {stage!r}")
        if isinstance(action, Greylist) and stage != "rcpt":
            raise ValueError("Greylist needs stage 'rcpt' (it keys on sender and recipient)")
        if isinstance(action, Respond):
            if stage is None:
                raise ValueError("Respond needs a stage: which codes are valid depends on it")
            code = action.code
            if code < 300 and stage in _NO_SUCCESS:
                raise ValueError(f"a rule may not give {code} at stage {stage!r}; use 4yz or 5yz")
            if not code_allowed(_KIND[stage], code):
                raise ValueError(f"{code} cannot answer stage {stage!r}")

    def matches(self, context: Context) -> bool:
        """Whether this rule applies to ``context`` (``times`` is the ``RuleSet``'s)."""
        if self.stage is not None and self.stage != context.stage:
            return False
        if self.connection is not None and self.connection != context.connection:
            return False
        if self.message is not None and (
            self.message != context.message or context.stage not in _SENDER_STAGES
        ):  # outside a transaction (EHLO, AUTH ...) the last message's number is stale
            return False
        if not _matches(self.sender, context.sender):
            return False
        if self.recipient is None:
            return True
        if context.recipient is not None:
            return _matches(self.recipient, context.recipient)
        return any(_matches(self.recipient, r) for r in context.recipients)


class RuleSet:
    """The rules of one server with their counters: connections, messages, how often
    each rule fired, greylisted triplets. Thread-safe: a test may ``replace`` the rules
    while the server runs in another thread (the counts of the rules then restart)."""

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        hook: Hook | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        #: Whether ``decide`` can answer anything but ``(None, 0.0)``: there is a rule
        #: or a hook (kept up to date by ``replace``, ``append`` and ``hook``).
        self.active = False
        self._rules: tuple[Rule, ...] = ()
        self._hook: Hook | None = None
        self.hook = hook
        #: Seconds, monotonic: greylisting's time (``time.monotonic`` by default).
        self.clock: Callable[[], float] = time.monotonic if clock is None else clock
        self.connections = 0
        self.messages = 0
        self._fired: list[int] = []
        self._triplets: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self.replace(rules)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, in the order they are tried."""
        return self._rules

    def replace(self, rules: Iterable[Rule]) -> None:
        """Use ``rules`` from now on (``TypeError`` if one is not a ``Rule``)."""
        new = tuple(rules)
        for rule in new:
            if not isinstance(rule, Rule):
                raise TypeError(f"rules must be Rule objects, got {rule!r}")
        with self._lock:
            self._rules, self._fired = new, [0] * len(new)
            self.active = bool(new) or self._hook is not None

    def append(self, rule: Rule) -> None:
        """Try ``rule`` after the others from now on (the others keep their counts)."""
        if not isinstance(rule, Rule):
            raise TypeError(f"rules must be Rule objects, got {rule!r}")
        with self._lock:
            self._rules, self._fired = (*self._rules, rule), [*self._fired, 0]
            self.active = True

    def extend(self, rules: Iterable[Rule]) -> None:
        """``append`` each of ``rules``."""
        for rule in rules:
            self.append(rule)

    def clear(self) -> None:
        """No rules from now on."""
        self.replace(())

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def fired(self, rule: Rule) -> int:
        """How often ``rule`` (the first equal one) decided since it was set."""
        with self._lock:
            return self._fired[self._rules.index(rule)]

    def new_connection(self) -> int:
        """Count a connection; its number."""
        with self._lock:
            self.connections += 1
            return self.connections

    def new_message(self) -> int:
        """Count a MAIL command; the number of its message."""
        with self._lock:
            self.messages += 1
            return self.messages

    @property
    def hook(self) -> Hook | None:
        """Decides what no rule matched (``None``: the normal answer); settable."""
        return self._hook

    @hook.setter
    def hook(self, hook: Hook | None) -> None:
        with self._lock:
            self._hook = hook
            self.active = bool(self._rules) or hook is not None

    def decide(self, context: Context) -> tuple[Action | None, float]:
        """The action of the first matching rule and its delay, counting it; else the
        hook's action (``None``: the normal answer) and no delay."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.times is not None and self._fired[index] >= rule.times:
                    continue
                if rule.matches(context):
                    self._fired[index] += 1
                    return rule.action, rule.delay
        hook = self._hook
        if hook is None:
            return None, 0.0
        action = hook(context)
        if inspect.isawaitable(action):  # an ``async def`` hook: it never ran
            if inspect.iscoroutine(action):
                action.close()
            raise TypeError(
                f"the hook returned a coroutine: hooks are called in the server's loop and "
                f"are not async; make {getattr(hook, '__name__', 'it')} a plain function"
            )
        if action is not None:  # checked as a rule for this stage would be
            try:
                Rule(stage=context.stage, action=action)
            except (TypeError, ValueError) as error:
                raise type(error)(f"the hook's answer at {context.stage}: {error}") from None
        return action, 0.0

    def greylisted(self, action: Greylist, context: Context) -> bool:
        """Whether ``context``'s triplet must still wait (first seen now, or less than
        ``retry_after`` seconds ago)."""
        key = (
            context.peer,
            (context.sender or "").casefold(),
            (context.recipient or "").casefold(),
        )
        now = self.clock()
        with self._lock:
            first = self._triplets.get(key)
            if first is None:
                self._triplets[key] = now
                if len(self._triplets) > MAX_TRIPLETS:
                    self._triplets.popitem(last=False)
                return True
            return now - first < action.retry_after
