"""The group step of the fast lane's replies (``replies.handle_replies``) against the
per-reply handlers, exhaustively.

A transaction the fast lane opened (``Transaction.group``) has its plain replies
handled in one step; every other reply goes to ``handle_reply``. Two connections send
the same groups — one with ``send`` (its replies take only the per-reply handlers),
one with ``send_group`` / ``send_bdat_group`` — then get the same answer: every entry
due answered positively but one, which gets each reply class in turn (2yz, 3yz, 4yz,
421, 5yz, 1yz, multiline, garbage), or an unsolicited reply after the last one; the
answer is split in two at every octet, and also fed one octet at a time. After every
``next_event`` call both must have returned the same event or raised the same error,
and hold the same state (``test_fastlane.snapshot``: each queued entry and
transaction record). ``test_fastlane.py`` adds random scripts (hypothesis).
"""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import greeted
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    NEED_DATA,
    Bdat,
    ConnectionClosed,
    Content,
    Data,
    EndOfContent,
    Rset,
)
from smtpproto.client_engine.session import Pending, Transaction, fill_pending, fill_transaction
from smtpproto.client_engine.states import Verb
from test_fastlane import EHLO_BDAT, EHLO_FAST, PARSERS, attempt, envelope, snapshot

#: Each reply class a server may send at any position of a group.
ALTERNATIVES = [
    b"250 2.0.0 ok\r\n",
    b"252 2.1.5 odd\r\n",
    b"250-first\r\n250 second\r\n",
    b"354 go ahead\r\n",
    b"354-a\r\n354 b\r\n",
    b"399 odd\r\n",
    b"451 4.3.0 later\r\n",
    b"421 4.3.2 closing\r\n",
    b"550 5.1.1 no\r\n",
    b"554 5.7.1 no\r\n",
    b"199 odd\r\n",
    b"2x0 what\r\n",
]
POSITIVE = {"MAIL": b"250 2.1.0 ok\r\n", "RCPT": b"250 2.1.5 ok\r\n", "DATA": b"354 go\r\n"}
#: Recipients per group: two in the DATA lane (a RCPT after a RCPT), one in the BDAT
#: window (its two groups and the RSET already make nine entries).
RECIPIENTS = 2
#: A reply after the last one due (unsolicited: only a 421 is allowed, RFC 5321 §3.8).
EXTRA = [b"250 extra\r\n", b"421 4.3.2 bye\r\n"]


def step(general: ClientConnection, fast: ClientConnection, chunk: bytes) -> bool:
    """Feed ``chunk`` to both, then call ``next_event`` on both until NEED_DATA,
    comparing after each call; False once they raised (the same error)."""
    got = attempt(lambda: general.receive_data(chunk)), attempt(lambda: fast.receive_data(chunk))
    assert got[1] == got[0]
    if got[0][0] == "raised":
        return False
    for _ in range(40):
        events = attempt(general.next_event), attempt(fast.next_event)
        assert events[1] == events[0]
        assert snapshot(fast) == snapshot(general)
        if events[0][0] == "raised" or events[0][1] is NEED_DATA:
            return events[0][0] != "raised"
        if type(events[0][1]) is ConnectionClosed:  # returned again on every call
            return False
    raise AssertionError("next_event never returned NEED_DATA")


def data_pair(parser_cls: Any) -> tuple[ClientConnection, ClientConnection, list[str]]:
    """Two connections with the same DATA groups queued — the first message's content
    ended, the second's MAIL, RCPTs and DATA — one sent with ``send``, one with
    ``send_group``; and the verbs of the entries due."""
    general, fast = (greeted(parser_cls, EHLO_FAST) for _ in range(2))
    mail, rcpts = envelope(RECIPIENTS, size=40)
    template = fast.group_template(mail, rcpts)
    assert template is not None
    for conn in (general, fast):
        conn.command_replies = False
    first = mail.with_size(10)
    wire = general.send(first) + b"".join(general.send(rcpt) for rcpt in rcpts)
    wire += general.send(Data())
    assert fast.send_group(None, template, first) == wire
    answer = POSITIVE["MAIL"] + POSITIVE["RCPT"] * RECIPIENTS + POSITIVE["DATA"]
    assert step(general, fast, answer)
    wire = general.send(Content(data=b"one\r\n.two")) + general.send(EndOfContent())
    wire += general.send(mail) + b"".join(general.send(rcpt) for rcpt in rcpts)
    wire += general.send(Data())
    assert fast.send_group(b"one\r\n.two", template, mail) == wire
    assert not general._s.pending[1].txn.group and fast._s.pending[1].txn.group
    return general, fast, [entry.verb.name for entry in general._s.pending]


def bdat_pair(parser_cls: Any) -> tuple[ClientConnection, ClientConnection, list[str]]:
    """As ``data_pair`` for a window of two BDAT LAST messages, the second behind its
    RSET (RFC 3030 §2)."""
    general, fast = (greeted(parser_cls, EHLO_BDAT) for _ in range(2))
    mail, rcpts = envelope(1)
    template = fast.group_template(mail, rcpts, bdat=True)
    assert template is not None
    for conn in (general, fast):
        conn.command_replies = False
    for reset, data in ((False, b"one\r\n"), (True, b"two\r\n")):
        wire = general.send(Rset()) if reset else b""
        wire += general.send(mail) + b"".join(general.send(rcpt) for rcpt in rcpts)
        wire += general.send(Bdat(data=data, last=True))
        assert fast.send_bdat_group(data, template, reset=reset) == wire
    return general, fast, [entry.verb.name for entry in general._s.pending]


def answers(verbs: list[str]) -> list[bytes]:
    """Every answer: all positive but one position, which gets each alternative; then
    all positive with an unsolicited reply after them."""
    positive = [POSITIVE.get(verb, b"250 2.0.0 queued\r\n") for verb in verbs]
    made = []
    for position in range(len(verbs)):
        for alternative in ALTERNATIVES:
            made.append(b"".join([*positive[:position], alternative, *positive[position + 1 :]]))
    made += [b"".join(positive) + extra for extra in EXTRA]
    return made


PAIRS = {"data": data_pair, "bdat": bdat_pair}


@pytest.mark.parametrize("parser_cls", PARSERS)
@pytest.mark.parametrize("lane", sorted(PAIRS))
def test_every_reply_class_at_every_position_split_at_every_octet(
    parser_cls: Any, lane: str
) -> None:
    _, _, verbs = PAIRS[lane](parser_cls)
    assert verbs[0] in ("END_OF_CONTENT", "MAIL") and verbs[-1] in ("DATA", "BDAT_LAST")
    for answer in answers(verbs):
        for cut in range(len(answer) + 1):
            general, fast, _ = PAIRS[lane](parser_cls)
            for chunk in (answer[:cut], answer[cut:]):
                if chunk and not step(general, fast, chunk):
                    break


@pytest.mark.parametrize("parser_cls", PARSERS)
@pytest.mark.parametrize("lane", sorted(PAIRS))
def test_every_reply_class_at_every_position_one_octet_at_a_time(
    parser_cls: Any, lane: str
) -> None:
    _, _, verbs = PAIRS[lane](parser_cls)
    for answer in answers(verbs):
        general, fast, _ = PAIRS[lane](parser_cls)
        for index in range(len(answer)):
            if not step(general, fast, answer[index : index + 1]):
                break
        else:
            step(general, fast, b"")  # and the EOF after it


@pytest.mark.parametrize("parser_cls", PARSERS)
def test_the_group_step_takes_a_positive_group_in_one_call(parser_cls: Any) -> None:
    """The plain group: one chunk, two events (the first message's result, then the
    second's 354), each returned by its own ``next_event`` call, with the state of the
    per-reply path after each."""
    general, fast, verbs = data_pair(parser_cls)
    answer = b"".join(POSITIVE.get(verb, b"250 2.0.0 queued\r\n") for verb in verbs)
    for conn in (general, fast):
        conn.receive_data(answer)
    names = []
    for _ in range(3):
        events = attempt(general.next_event), attempt(fast.next_event)
        assert events[1] == events[0]
        assert snapshot(fast) == snapshot(general)
        names.append(type(events[0][1]).__name__)
    assert names == ["TransactionResult", "ReadyForContent", "NeedData"]


@pytest.mark.parametrize("count", [1, 2, 5])
def test_the_fast_lanes_records_are_what_the_constructors_make(count: int) -> None:
    """``fill_transaction`` / ``fill_pending`` (slots filled directly) against
    ``Transaction(mail, addresses)`` / ``Pending(...)``, slot by slot; only ``group``
    differs (the fast lane's mark)."""
    mail, rcpts = envelope(count)
    addresses = tuple(rcpt.recipient for rcpt in rcpts)
    made = Transaction(mail, addresses)
    filled = fill_transaction(
        mail, None, list(addresses), [None] * count, None, [], count, False, True, [], count
    )
    for name in Transaction.__slots__:
        if name != "group":
            assert getattr(filled, name) == getattr(made, name), name
    assert (made.group, filled.group) == (False, True)
    entry = Pending(Verb.RCPT, rcpts[0], made, 1, 0)
    same = fill_pending(Verb.RCPT, rcpts[0], made, 1, 0)
    assert [getattr(same, name) for name in Pending.__slots__] == [
        getattr(entry, name) for name in Pending.__slots__
    ]
