"""What one client connection holds (issue 14: memory per connection): no per-connection
copy of what can be shared or computed, with the same behaviour.

The reply timeouts are read from the config's ``Timeouts`` through one table of field
names shared by every connection (was a dict of seconds per connection, 1.2 KB each);
the parsed EHLO reply is interned (``tests/test_ehlo_cache.py``); the redactor is made
at AUTH (``tests/test_redaction_lazy.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine_helpers import EHLO_ALL, feed, make_conn
from smtpproto.client_engine import connection
from smtpproto.client_engine.config import Timeouts
from smtpproto.client_engine.events import (
    Bdat,
    Data,
    Ehlo,
    EndOfContent,
    Mail,
    Noop,
    Quit,
    Rcpt,
)
from smtpproto.client_engine.session import Pending
from smtpproto.client_engine.states import ClientState, Verb

#: Every field a different number of seconds, so each wait shows which one it reads.
DISTINCT = Timeouts(
    greeting=1.0,
    mail=2.0,
    rcpt=3.0,
    data_initiation=4.0,
    data_block=5.0,
    data_termination=6.0,
    other=7.0,
)


def test_every_verb_has_a_timeouts_field() -> None:
    fields = {field.name for field in dataclasses.fields(Timeouts)}
    table = connection._REPLY_TIMEOUTS
    assert set(table) == {None, *Verb}
    assert set(table.values()) <= fields


def test_each_wait_reads_its_own_field(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, timeouts=DISTINCT)
    assert conn.timeout == 1.0  # the greeting
    feed(conn, b"220 hi\r\n")
    assert conn.timeout is None
    conn.send(Ehlo(hostname="c.example"))
    assert conn.timeout == 7.0  # EHLO: other
    feed(conn, EHLO_ALL)
    conn.send(Mail(sender="a@example.org"))
    assert conn.timeout == 2.0
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Data())
    feed(conn, b"250 ok\r\n")
    assert conn.timeout == 3.0
    feed(conn, b"250 ok\r\n")
    assert conn.timeout == 4.0
    feed(conn, b"354 go\r\n")
    assert conn.timeout == 5.0  # content being written: data block
    conn.send(EndOfContent())
    assert conn.timeout == 6.0
    feed(conn, b"250 queued\r\n")
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    feed(conn, b"250 ok\r\n250 ok\r\n")
    conn.send(Bdat(data=b"chunk"))
    assert conn.timeout == 5.0
    conn.send(Bdat(data=b"end", last=True))
    feed(conn, b"250 ok\r\n")
    assert conn.timeout == 6.0
    feed(conn, b"250 ok\r\n")
    conn.send(Noop())
    assert conn.timeout == 7.0
    feed(conn, b"250 ok\r\n")
    conn.send(Quit())
    assert conn.timeout == 7.0


def test_the_timeout_of_every_state_and_reply_due(parser_cls: Any) -> None:
    """``timeout`` for every state, with nothing due and with a reply due to each verb
    (None: the greeting): its rule, spelled out (``timeout`` is written for speed)."""
    conn = make_conn(parser_cls, timeouts=DISTINCT)
    s = conn._s
    for state in ClientState:
        for due in (None, *Verb, "nothing"):
            s.state = state
            s.pending.clear()
            if due != "nothing":
                s.pending.append(Pending(due, None))  # type: ignore[arg-type]
            if state in (ClientState.ERROR, ClientState.CLOSED, ClientState.TLS_HANDSHAKE):
                expected = None
            elif due != "nothing":
                expected = getattr(DISTINCT, connection._REPLY_TIMEOUTS[due])  # type: ignore[index]
            elif state in (ClientState.CONTENT, ClientState.DISCARD_CONTENT):
                expected = DISTINCT.data_block
            else:
                expected = None
            assert conn.timeout == expected, (state, due)


def test_a_timeout_of_none_is_no_limit(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, timeouts=dataclasses.replace(DISTINCT, greeting=None))
    assert conn.timeout is None
    feed(conn, b"220 hi\r\n")
    conn.send(Ehlo(hostname="c.example"))
    assert conn.timeout == 7.0
