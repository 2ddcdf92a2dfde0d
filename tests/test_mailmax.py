"""LIMITS MAILMAX (RFC 9422 §4.1) in the client engine: every MAIL sent in the session
counts, accepted or not; one past the limit is refused before any byte exists, with
nothing changed (docs/design.md §2), by ``send`` and by the fast lane's
``send_group`` alike; a new EHLO does not reset the count, TLS does (RFC 3207 §4.2).
The drivers and adapters on top: tests/adapters/test_mailmax.py."""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import feed, greeted
from smtpproto import LocalProtocolError
from smtpproto.client_engine.events import (
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Mail,
    Rcpt,
    Rset,
    StartTLS,
    TransactionResult,
)
from test_fastlane import snapshot

EHLO = b"250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 LIMITS MAILMAX=2 RCPTMAX=5\r\n"


def transaction(conn: Any, mail_reply: bytes = b"250 ok\r\n") -> None:
    """One whole transaction (MAIL refused when ``mail_reply`` is an error)."""
    conn.send(Mail(sender="a@example.org"))
    if not mail_reply.startswith(b"250"):
        feed(conn, mail_reply)
        return
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Data())
    feed(conn, mail_reply + b"250 ok\r\n354 go\r\n")
    conn.send(Content(data=b"x\r\n"))
    conn.send(EndOfContent())
    events = feed(conn, b"250 queued\r\n")
    assert isinstance(events[-1], TransactionResult)


def test_a_mail_past_mailmax_is_refused_and_changes_nothing(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO)
    assert conn.mail_budget == 2
    transaction(conn)
    assert conn.mail_budget == 1
    transaction(conn, b"451 4.3.0 try later\r\n")  # refused: it counts all the same
    assert conn.mail_budget == 0
    before = snapshot(conn)
    with pytest.raises(LocalProtocolError, match=r"LIMITS MAILMAX is 2 .*RFC 9422 §4\.1"):
        conn.send(Mail(sender="a@example.org"))
    assert snapshot(conn) == before  # not sticky: nothing changed
    conn.send(Rset())  # the session still takes commands
    feed(conn, b"250 ok\r\n")
    conn.send(Ehlo(hostname="c.example"))  # a new EHLO is the same session
    feed(conn, EHLO)
    assert conn.mail_budget == 0
    with pytest.raises(LocalProtocolError, match="MAILMAX"):
        conn.send(Mail(sender="a@example.org"))


def test_tls_starts_a_new_count(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO)
    transaction(conn)
    transaction(conn)
    assert conn.mail_budget == 0
    conn.send(StartTLS())
    feed(conn, b"220 go ahead\r\n")
    conn.tls_established()
    assert conn.mail_budget is None  # nothing known before the new EHLO
    conn.send(Ehlo(hostname="c.example"))
    feed(conn, EHLO.replace(b"250-STARTTLS\r\n", b""))
    assert conn.mail_budget == 2
    transaction(conn)
    assert conn.mail_budget == 1


def test_no_limits_no_budget(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO.replace(b"MAILMAX=2 ", b""))
    assert conn.mail_budget is None
    for _ in range(5):
        transaction(conn)
    assert conn.mail_budget is None


def test_the_fast_lane_counts_and_declines_past_mailmax(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO)
    conn.command_replies = False
    mail, rcpts = Mail(sender="a@example.org"), (Rcpt(recipient="b@example.org"),)
    template = conn.group_template(mail, rcpts)
    assert template is not None
    assert conn.send_group(None, template) is not None
    assert conn.mail_budget == 1
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert conn.send_group(b"x\r\n", template) is not None  # the second transaction
    assert conn.mail_budget == 0
    feed(conn, b"250 queued\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    before = snapshot(conn)
    assert conn.send_group(b"y\r\n", template) is None  # a third: declined, unchanged
    assert snapshot(conn) == before
    conn.send(Content(data=b"y\r\n"))  # the general path ends the content
    conn.send(EndOfContent())
    feed(conn, b"250 queued\r\n")
    with pytest.raises(LocalProtocolError, match="MAILMAX"):  # and refuses the MAIL
        conn.send(mail)
