"""``send_many``'s fast lane (``BatchDrivers._fast_group`` over the engine's
``ClientConnection.send_group``) against the general path, through the whole driver.

The same batch runs twice against the same scripted server: once as shipped, once
with the fast lane turned off. Hypothesis draws the server's replies (positive,
refusals of MAIL/RCPT/DATA/the end of the content, 421, multi-line, odd codes,
garbage), the octets each read is cut at, an EOF anywhere, messages the driver
refuses (an address with CR LF) or the encoder refuses (a NUL), and an iterable that
raises part way; the two runs must write
the same bytes, make the same requests, return the same outcomes (or raise the same
error) and leave the engine in the same state.
"""

from __future__ import annotations

import contextlib
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import ScriptedServer
from session_helpers import GREETING
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers import batch
from smtpproto.drivers.batch import BatchDrivers
from smtpproto.drivers.session import Read, Session, Write
from smtpproto.drivers.support import MailOptions
from smtpproto.exceptions import SMTPProtocolError
from test_fastlane import snapshot

EHLO = b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME\r\n"
MAX_REQUESTS = 2_000
REPLIES = {
    b"MAIL": [b"250 2.1.0 ok\r\n", b"550 5.1.0 no\r\n", b"451 4.3.0 later\r\n"],
    b"RCPT": [b"250 2.1.5 ok\r\n", b"550 5.1.1 no\r\n", b"250-one\r\n250 two\r\n"],
    b"DATA": [b"354 go\r\n", b"554 5.7.1 no\r\n", b"250 2.0.0 odd\r\n", b"354-a\r\n354 b\r\n"],
    b".": [b"250 2.0.0 queued\r\n", b"552 5.3.4 too big\r\n", b"451 4.3.0 later\r\n"],
    b"BDAT": [b"250 2.0.0 queued\r\n", b"552 5.3.4 too big\r\n", b"554 5.5.1 no\r\n"],
    b"RSET": [b"250 2.0.0 ok\r\n", b"500 5.5.1 what\r\n"],
}
ANYWHERE = [b"421 4.3.2 closing\r\n", b"2x0 garbage\r\n", b"252 2.1.5 odd\r\n"]


class CuttingTransport:
    """Plays the adapter: each ``Read`` gets at most the next drawn number of octets
    of what the server said; after ``eof_after`` octets the server closes."""

    def __init__(self, server: ScriptedServer, cuts: list[int], eof_after: int | None) -> None:
        self.server = server
        self.pending = GREETING
        self.cuts = iter(cuts)
        self.eof_after = eof_after
        self.given = 0
        self.written: list[bytes] = []
        self.trace: list[Any] = []

    def run(self, driver: Any, conn: ClientConnection | None) -> Any:
        answer: Any = None
        for _ in range(MAX_REQUESTS):
            try:
                request = driver.send(answer)
            except StopIteration as stop:
                return stop.value
            answer = None
            self.trace.append((request, None if conn is None else snapshot(conn)))
            if isinstance(request, Write):
                self.written.append(request.data)
                self.pending += self.server.receive(request.data)
                continue
            assert isinstance(request, Read)
            size = next(self.cuts, 1 << 20) or 1 << 20
            if self.eof_after is not None and self.given >= self.eof_after:
                answer = b""
            elif self.pending:
                if self.eof_after is not None:
                    size = min(size, self.eof_after - self.given)
                answer, self.pending = self.pending[:size], self.pending[size:]
                self.given += len(answer)
            else:
                try:
                    driver.throw(TimeoutError("silent server"))
                except StopIteration as stop:
                    return stop.value
                raise AssertionError("the driver swallowed a TimeoutError")
        raise AssertionError("the driver never finished")


def outcome_key(outcome: Any) -> Any:
    if isinstance(outcome, Exception):
        return (type(outcome), str(outcome), getattr(outcome, "reply", None))
    return outcome


class Broken(Exception):
    """What the caller's iterable raises."""


def iterate(items: list[Any], fail_at: int | None) -> Any:
    for index, item in enumerate(items):
        if index == fail_at:
            raise Broken(f"the iterable failed at {index}")
        yield item


def run_batch(
    script: dict[bytes, list[bytes]],
    items: list[Any],
    cuts: list[int],
    eof: int | None,
    fast: bool,
    fail_at: int | None = None,
    ehlo: bytes = EHLO,
    **many: Any,
) -> tuple[Any, ...]:
    server = ScriptedServer({b"EHLO": [ehlo], **{k: list(v) for k, v in script.items()}})
    session = Session(ClientConfig(), local_hostname="client.example")
    transport = CuttingTransport(server, [], None)
    transport.run(session.open(), None)
    transport.cuts, transport.eof_after = iter(cuts), eof
    transport.trace.clear()
    transport.written.clear()
    used = []
    original = ClientConnection.send_group

    def counted(
        conn: ClientConnection, content: Any, template: Any, mail: Any = None
    ) -> bytes | None:
        wire = original(conn, content, template, mail)
        used.append(wire is not None)
        return wire

    original_bdat = ClientConnection.send_bdat_group

    def counted_bdat(conn: ClientConnection, *args: Any, **kwargs: Any) -> bytes | None:
        wire = original_bdat(conn, *args, **kwargs)
        used.append(wire is not None)
        return wire

    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(ClientConnection, "send_group", counted))
        patches.enter_context(mock.patch.object(ClientConnection, "send_bdat_group", counted_bdat))
        if not fast:  # the reference: no fast lane, every message made in full
            off = mock.patch.object(BatchDrivers, "_fast_group", lambda *args: None)
            patches.enter_context(off)
            patches.enter_context(mock.patch.object(batch, "repeated", lambda *args: None))
            bdat_off = mock.patch.object(BatchDrivers, "_fast_bdat", lambda *args: None)
            patches.enter_context(bdat_off)
        try:
            outcomes = transport.run(
                session.send_many(iterate(items, fail_at), **many), session.conn
            )
            result: Any = ("ok", [outcome_key(o) for o in outcomes])
        except Exception as error:
            result = ("raised", outcome_key(error))
    return (
        result,
        b"".join(transport.written),
        transport.trace,
        snapshot(session.conn),
        session.usable,
        sum(used),
    )


@st.composite
def server_scripts(draw: st.DrawFn) -> dict[bytes, list[bytes]]:
    script: dict[bytes, list[bytes]] = {}
    for verb, choices in REPLIES.items():
        weights = st.sampled_from([choices[0]] * 8 + choices[1:] + ANYWHERE)
        script[verb] = draw(st.lists(weights, max_size=12))
    return script


ITEM = ("s@example.org", ["a@example.org", "b@example.org"])
#: ``ITEM``'s recipients as one tuple, shared by messages (the same object each time).
SHARED = tuple(ITEM[1])
#: A message the driver refuses before sending (CR LF in an address): its outcome is
#: ``SMTPProtocolError`` and the batch goes on.
BAD = ("s@example.org", ["a@example.org\r\nRCPT TO:<x@y>"])


#: What a message's content is given as (``batch_plan.repeated`` takes each; the reference
#: ``_prepare``): the same octets in every form.
KINDS = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "str": lambda data: data.decode("latin-1"),
}
#: The server's SIZE (RFC 1870 §4): a limit some messages pass, one none of the larger
#: ones fit, 0 ("no fixed maximum"), bare, or no SIZE at all (no SIZE= is sent).
SIZE_LINES = [b"SIZE 100000", b"SIZE 40", b"SIZE 0", b"SIZE", None]


def ehlo_with(size_line: bytes | None, chunking: bool = False, mailmax: int | None = None) -> bytes:
    lines = [b"mx.example.org", b"PIPELINING", b"8BITMIME"]
    if mailmax is not None:  # RFC 9422 §4.1: past it MAIL is refused before it is sent
        lines.insert(2, b"LIMITS MAILMAX=%d" % mailmax)
    if size_line is not None:
        lines.insert(2, size_line)
    if chunking:  # BDAT windows (RFC 3030): the driver chooses BDAT for small messages
        lines.insert(2, b"CHUNKING")
    return b"".join(b"250-" + line + b"\r\n" for line in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=server_scripts(),
    contents=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    *(b"a\r\n", b".dot\r\n..\r\n", b"", b"x" * 30, b"bad\x00nul", None),
                    *(b"y" * 70, b"\xe9t\xe9\r\n", b"bare\rcr\nlf", b"z" * 1000),
                ]
            ),
            st.sampled_from(list(KINDS)),
        ),
        min_size=1,
        max_size=8,
    ),
    cuts=st.lists(st.integers(0, 60), max_size=30),
    eof=st.none() | st.integers(0, 600),
    fail_at=st.none() | st.integers(0, 8),
    size_line=st.sampled_from(SIZE_LINES),
    chunking=st.booleans(),
    mailmax=st.sampled_from([None, None, 3]),
    shared=st.booleans(),
)
def test_send_many_fast_lane_equals_the_general_path(
    script: dict[bytes, list[bytes]],
    contents: list[tuple[bytes | None, str]],
    cuts: list[int],
    eof: int | None,
    fail_at: int | None,
    size_line: bytes | None,
    chunking: bool,
    mailmax: int | None,
    shared: bool,
) -> None:
    # ``shared``: every message names its recipients with one tuple object (which
    # ``batch_plan.repeated`` recognises without comparing its values), else each with a list.
    recipients = SHARED if shared else ITEM[1]
    # Messages of different lengths (each its own SIZE=, RFC 1870 §6, some above the
    # server's limit), content given as bytes, bytearray, memoryview or str, 8-bit, bare
    # CR/LF, NUL, a line over 998 octets (the encoder refuses it after the 354).
    items = [
        (ITEM[0], recipients, KINDS[kind](content)) if content is not None else (*BAD, b"x")
        for content, kind in contents
    ]
    ehlo = ehlo_with(size_line, chunking, mailmax)  # CHUNKING: BDAT LAST windows, RSET first
    general = run_batch(script, items, cuts, eof, fast=False, fail_at=fail_at, ehlo=ehlo)
    fast = run_batch(script, items, cuts, eof, fast=True, fail_at=fail_at, ehlo=ehlo)
    assert fast[:5] == general[:5]
    assert not general[5]  # the reference never took the fast lane


def test_a_repeated_envelope_takes_the_fast_lane() -> None:
    items = [(*ITEM, b"line %d\r\n" % i) for i in range(20)]
    (status, outcomes), wire, _, _, usable, used = run_batch({}, items, [], None, fast=True)
    assert status == "ok" and usable and used
    assert len(outcomes) == 20 and all(o.delivered == tuple(ITEM[1]) for o in outcomes)
    assert wire.count(b"MAIL FROM:") == 20


def test_different_envelopes_stay_on_the_general_path() -> None:
    items = [(f"s{i}@example.org", ["a@example.org"], b"x\r\n") for i in range(5)]
    (status, outcomes), *_, used = run_batch({}, items, [], None, fast=True)
    assert status == "ok" and len(outcomes) == 5 and not used


@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_messages_of_every_length_and_bytes_like_type_take_the_fast_lane(
    kind: str, chunking: bool
) -> None:
    # The server advertises SIZE: each MAIL carries its message's own SIZE= (RFC 1870
    # §6), and the template's slot keeps messages of different lengths in the lane;
    # with CHUNKING each message goes as RSET (an earlier BDAT LAST is unanswered),
    # MAIL, RCPTs and BDAT LAST in one engine step (RFC 3030 §2).
    items = [(*ITEM, KINDS[kind](b"line\r\n" * (i % 7 + 1))) for i in range(20)]
    ehlo = ehlo_with(b"SIZE 100000", chunking)
    (status, outcomes), wire, *_, used = run_batch({}, items, [], None, fast=True, ehlo=ehlo)
    assert status == "ok" and len(outcomes) == 20
    assert all(o.delivered == tuple(ITEM[1]) for o in outcomes)
    assert used == 19  # every message after the first
    # ASCII content in every form: no BODY= (``all_ascii`` reads a memoryview's octets).
    for i in range(20):
        assert b"MAIL FROM:<s@example.org> SIZE=%d\r\n" % (6 * (i % 7 + 1)) in wire
    assert b"BODY=" not in wire
    assert wire.count(b"BDAT") == (20 if chunking else 0)
    assert wire.count(b"DATA\r\n") == (0 if chunking else 20)


def test_a_size_above_the_servers_limit_is_that_messages_outcome() -> None:
    items = [(*ITEM, b"x" * (n - 2) + b"\r\n") for n in (10, 20, 50, 30, 41, 40)]
    run = run_batch({}, items, [], None, fast=True, ehlo=ehlo_with(b"SIZE 40"))
    reference = run_batch({}, items, [], None, fast=False, ehlo=ehlo_with(b"SIZE 40"))
    assert run[:5] == reference[:5]
    (status, outcomes), wire, *_ = run
    assert status == "ok"
    refused = [i for i, o in enumerate(outcomes) if not hasattr(o, "delivered")]
    assert refused == [2, 4]  # refused before MAIL: SIZE= above 40 (RFC 1870 §6.1)
    assert b"SIZE=50" not in wire and b"SIZE=41" not in wire and b"SIZE=40\r\n" in wire


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    "line",
    [b"plain", b"\xe9t\xe9 8-bit", b"bare\rcr", b".lead", b"nul\x00", b"w" * 999],
    ids=["plain", "8bit", "bare-cr", "dot", "nul", "over-long"],
)
@pytest.mark.parametrize("size_line", SIZE_LINES)
@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
def test_repeated_messages_of_each_shape_equal_the_general_path(
    kind: str, line: bytes, size_line: bytes | None, chunking: bool
) -> None:
    # The same content shape over a batch of different lengths: whatever the general
    # path does with it (BODY=8BITMIME, SIZE=, a refusal by the encoder after the
    # 354, which ends the session) the fast lane does identically.
    items = [(*ITEM, KINDS[kind](b"%s%d\r\n" % (line, i) * (i + 1))) for i in range(6)]
    ehlo = ehlo_with(size_line, chunking)
    general = run_batch({}, items, [], None, fast=False, ehlo=ehlo)
    fast = run_batch({}, items, [], None, fast=True, ehlo=ehlo)
    assert fast[:5] == general[:5]


def test_a_bdat_transaction_left_open_gets_its_rset_in_the_fast_lane() -> None:
    # Every RCPT of message 1 refused, its BDAT LAST answered: the transaction may be
    # open at the server (``left_open``), so the next MAIL goes after an RSET even
    # with nothing in flight (a window of one), in the fast lane as on the general path.
    script = {b"RCPT": [b"250 ok\r\n"] * 2 + [b"550 5.1.1 no\r\n"] * 2}
    items = [(*ITEM, b"message %d\r\n" % i) for i in range(4)]
    ehlo = ehlo_with(b"SIZE 1000", chunking=True)
    runs = [
        run_batch(script, items, [], None, fast=fast, ehlo=ehlo, max_in_flight=1)
        for fast in (False, True)
    ]
    assert runs[1][:5] == runs[0][:5]
    (status, outcomes), wire, *_, used = runs[1]
    assert status == "ok" and used == 3  # every message after the first
    assert [hasattr(o, "delivered") for o in outcomes] == [True, False, True, True]
    assert wire.count(b"RSET\r\n") == 1 and wire.index(b"RSET") < wire.rindex(b"message 2")


@pytest.mark.parametrize("body", [None, "8BITMIME", "BINARYMIME"])
def test_bdat_windows_with_each_body_equal_the_general_path(body: str | None) -> None:
    # BODY=BINARYMIME content goes as is (no line-end normalisation, RFC 3030 §3);
    # otherwise bare CR/LF become CRLF; 8-bit content needs 8BITMIME or BINARYMIME.
    ehlo = ehlo_with(b"SIZE 100000", chunking=True).replace(
        b"250-CHUNKING", b"250-CHUNKING\r\n250-BINARYMIME"
    )
    lines = [b"bare\nlf %d\r\n", b"\xe98bit %d\r\n", b"bare\rcr %d", b"plain %d\r\n"]
    items = [(*ITEM, lines[i % 4] % i * (i + 1)) for i in range(12)]
    options = MailOptions(body=body)
    general = run_batch({}, items, [], None, fast=False, ehlo=ehlo, options=options)
    fast = run_batch({}, items, [], None, fast=True, ehlo=ehlo, options=options)
    assert fast[:5] == general[:5]
    assert fast[5] > 0  # the lane took some of them


def test_strided_and_released_memoryviews_as_on_the_general_path() -> None:
    # A strided slice is sent in its logical order (``support._octets``), in the lane
    # too; a released memoryview is that message's ``SMTPProtocolError`` before MAIL,
    # and the batch goes on.
    released = memoryview(b"gone\r\n")
    released.release()
    strided = [memoryview(b"xsxtxrxixdxexd\r\n\r\n" * (i + 1))[1::2] for i in range(4)]
    items = [(*ITEM, b"first\r\n"), *((*ITEM, view) for view in strided), (*ITEM, released)]
    items.append((*ITEM, b"last\r\n"))
    for chunking in (False, True):
        ehlo = ehlo_with(b"SIZE 1000", chunking)
        general = run_batch({}, items, [], None, fast=False, ehlo=ehlo)
        fast = run_batch({}, items, [], None, fast=True, ehlo=ehlo)
        assert fast[:5] == general[:5]
        (status, outcomes), wire, *_, usable, used = fast
        assert status == "ok" and usable and used >= 3
        refused, last = outcomes[-2:]
        assert refused[0] is SMTPProtocolError and "released" in refused[1]
        assert isinstance(last, TransactionResult) and last.delivered
        assert b"strided\r\n\r\n" in wire and b"sxtxr" not in wire


class Address(str):
    """A str subclass whose own ``__eq__`` also says it equals ``a@example.org``:
    never taken for a known recipient, whatever it says."""

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other) is True or other == "a@example.org"

    __hash__ = str.__hash__


@pytest.mark.parametrize("kind", ["tuple", "list"])
def test_recipients_given_again_are_compared_unless_the_same_exact_tuple(kind: str) -> None:
    # The shared tuple is recognised (the fast lane, no comparison); a tuple holding
    # a str subclass, a new tuple or a list of other values is compared (``batch_plan.repeated``)
    # and a different recipient gets its own RCPT, on both paths alike.
    shared = ("a@example.org",)
    odd = (Address("c@example.org"),)  # "equal" to ``shared``'s, by its own ``__eq__``
    make = tuple if kind == "tuple" else list
    items = [
        ("s@example.org", shared, b"one\r\n"),
        ("s@example.org", shared, b"two\r\n"),
        ("s@example.org", odd, b"three\r\n"),
        ("s@example.org", odd, b"four\r\n"),
        ("s@example.org", make(["b@example.org"]), b"five\r\n"),
        ("s@example.org", shared, b"six\r\n"),
    ]
    general = run_batch({}, items, [], None, fast=False)
    fast = run_batch({}, items, [], None, fast=True)
    assert fast[:5] == general[:5]
    wire = fast[1]
    assert wire.count(b"RCPT TO:<a@example.org>") == 3
    assert wire.count(b"RCPT TO:<b@example.org>") == 1
    assert wire.count(b"RCPT TO:<c@example.org>") == 2
    assert fast[5]  # the shared tuple's messages took the fast lane
