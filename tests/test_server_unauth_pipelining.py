"""Commands sent before the reply they had to wait for (issue 11, security item 4).

RFC 5321 §4.3 (lock-step without PIPELINING) and RFC 2920 §3.1 (with it, EHLO, DATA,
NOOP, VRFY, EXPN, QUIT and extension commands end a group): the server engine marks
such input on the event (``unauthorized_pipelining``, ``ServerConfig(
unauthorized_pipelining="flag")``, the engine's default) or refuses it with 554 5.5.0
and closes (``"reject"``, the built-in server's default, as Postfix 3.9's
``smtpd_forbid_unauth_pipelining``). Real clients against the built-in server are in
``tests/test_server_unauth_pipelining_peers.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server_support import Session
from smtpproto.server_engine.config import ServerConfig
from smtpproto.server_engine.events import (
    CommandRejected,
    MessageComplete,
    ServerEvent,
)
from smtpproto.server_engine.replies import greeting
from smtpproto.server_engine.states import ServerState

NO_PIPELINING = ("8BITMIME", "AUTH PLAIN", "ENHANCEDSTATUSCODES", "CHUNKING")
PIPELINING = ("PIPELINING", *NO_PIPELINING)
FLAG = ServerConfig()
REJECT = ServerConfig(unauthorized_pipelining="reject")
EHLO = b"EHLO client.test\r\n"
TRANSACTION = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
CONTENT = b"Subject: x\r\n\r\nhello\r\n.\r\n"


def flags(events: list[ServerEvent]) -> list[tuple[str, bool]]:
    return [(type(e).__name__, e.unauthorized_pipelining) for e in events]


def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    s = Session(extensions=NO_PIPELINING, config=FLAG)
    s.feed(EHLO)
    events = s.feed(TRANSACTION)
    assert flags(events) == [
        ("MailReceived", False),  # written after the EHLO reply
        ("RcptReceived", True),  # written before the MAIL reply
        ("DataRequested", True),
    ]
    assert flags(s.feed(CONTENT)) == [("ContentReceived", False), ("MessageComplete", False)]


def test_without_pipelining_reject_answers_554_and_closes() -> None:
    s = Session(extensions=NO_PIPELINING, config=REJECT)
    s.feed(EHLO)
    events = s.feed(TRANSACTION + CONTENT)
    assert [type(e).__name__ for e in events] == ["MailReceived", "CommandRejected"]
    rejected = events[1]
    assert isinstance(rejected, CommandRejected) and rejected.unauthorized_pipelining
    assert rejected.reply.code == 554 and rejected.line == b"RCPT TO:<b@y.test>"
    assert b"554 5.5.0 Error: SMTP protocol synchronization\r\n" in s.out
    assert s.conn.state is ServerState.CLOSED  # DATA and the content never parsed
    assert s.of(MessageComplete) == []


def test_with_pipelining_a_group_is_allowed() -> None:
    s = Session(extensions=PIPELINING, config=REJECT)
    s.feed(EHLO)
    events = s.feed(TRANSACTION)
    assert flags(events) == [
        ("MailReceived", False),
        ("RcptReceived", False),
        ("DataRequested", False),
    ]
    # The end of the content may be followed at once (RFC 2920 §3.1: the content is the
    # first "command" of a group): MAIL of the next message, then QUIT after RSET.
    events = s.feed(CONTENT + b"RSET\r\nMAIL FROM:<c@x.test>\r\nQUIT\r\n")
    assert [name for name, early in flags(events) if early] == []
    assert s.conn.state is ServerState.CLOSED and b"221" in s.out


@pytest.mark.parametrize(
    ("ending", "early"),
    [
        (b"EHLO again.test\r\n", True),
        (b"NOOP\r\n", True),
        (b"VRFY bob\r\n", True),
        (b"EXPN list\r\n", True),
        (b"XUNKNOWN\r\n", True),  # extension commands end a group unless they say not
        (b"HELP\r\n", False),  # not in RFC 2920's list
        (b"RSET\r\n", False),
    ],
)
def test_with_pipelining_a_group_ending_command_must_be_last(ending: bytes, early: bool) -> None:
    s = Session(extensions=PIPELINING, config=FLAG)
    s.feed(EHLO)
    events = s.feed(ending + b"MAIL FROM:<a@x.test>\r\n")
    assert flags(events)[-1] == ("MailReceived", early)


def test_content_before_the_354_is_early() -> None:
    flagged = Session(extensions=PIPELINING, config=FLAG)
    flagged.feed(EHLO)
    events = flagged.feed(TRANSACTION + CONTENT)
    (complete,) = [e for e in events if isinstance(e, MessageComplete)]
    assert complete.unauthorized_pipelining
    rejected = Session(extensions=PIPELINING, config=REJECT)
    rejected.feed(EHLO)
    events = rejected.feed(TRANSACTION + CONTENT)
    assert [type(e).__name__ for e in events][-1] == "CommandRejected"
    assert rejected.out.endswith(b"554 5.5.0 Error: SMTP protocol synchronization\r\n")
    assert rejected.of(MessageComplete) == [] and rejected.conn.state is ServerState.CLOSED


def test_talking_before_the_greeting_is_early() -> None:
    s = Session(extensions=PIPELINING, config=REJECT, greet=False)
    s.conn.receive_data(EHLO)
    s.out += s.conn.send(greeting("mx.test"))
    s.pump()
    (event,) = s.events
    assert isinstance(event, CommandRejected) and event.reply.code == 554


def test_an_auth_response_before_the_334_is_early() -> None:
    s = Session(extensions=PIPELINING, config=FLAG)
    s.feed(EHLO)
    events = s.feed(b"AUTH PLAIN\r\nAGEAYg==\r\n")
    assert flags(events) == [("AuthRequested", False), ("AuthResponse", True)]


@pytest.mark.parametrize("config", [FLAG, REJECT])
def test_each_side_of_the_reply(config: ServerConfig) -> None:
    """The next command fed right after the reply is not early; with one octet of it
    fed before the reply (in the same chunk as MAIL) it is."""
    after = Session(extensions=NO_PIPELINING, config=config)
    after.feed(EHLO, b"MAIL FROM:<a@x.test>\r\n")  # ``feed`` sends each reply at once
    (rcpt,) = after.feed(b"RCPT TO:<b@y.test>\r\n")
    assert not rcpt.unauthorized_pipelining
    before = Session(extensions=NO_PIPELINING, config=config)
    before.feed(EHLO, b"MAIL FROM:<a@x.test>\r\nR")
    (event,) = before.feed(b"CPT TO:<b@y.test>\r\n")
    assert event.unauthorized_pipelining
    assert isinstance(event, CommandRejected) == (config is REJECT)


def test_the_flag_is_not_part_of_equality() -> None:
    s = Session(extensions=NO_PIPELINING, config=FLAG)
    s.feed(EHLO)
    _, rcpt, _ = s.feed(TRANSACTION)
    assert rcpt.unauthorized_pipelining and "unauthorized_pipelining=True" in repr(rcpt)
    plain = Session(extensions=NO_PIPELINING, config=FLAG)
    plain.feed(EHLO)
    plain.feed(b"MAIL FROM:<a@x.test>\r\n")
    (same,) = plain.feed(b"RCPT TO:<b@y.test>\r\n")
    assert same == rcpt and not same.unauthorized_pipelining


def test_the_config_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unauthorized_pipelining"):
        ServerConfig(unauthorized_pipelining="drop")  # type: ignore[arg-type]


COMMANDS = [
    b"NOOP\r\n",
    b"RSET\r\n",
    b"HELP\r\n",
    b"VRFY bob\r\n",
    b"MAIL FROM:<a@x.test>\r\n",
    b"RCPT TO:<b@y.test>\r\n",
    b"XFOO\r\n",
    b"EHLO again.test\r\n",
]


@settings(max_examples=100, deadline=None)
@given(
    commands=st.lists(st.sampled_from(COMMANDS), min_size=1, max_size=12),
    pipelining=st.booleans(),
)
def test_a_lock_step_client_is_never_early(commands: list[bytes], pipelining: bool) -> None:
    s = Session(extensions=PIPELINING if pipelining else NO_PIPELINING, config=REJECT)
    s.feed(EHLO)
    for command in commands:
        s.feed(command)
    assert not any(e.unauthorized_pipelining for e in s.events)
    assert s.conn.state is not ServerState.CLOSED


@settings(max_examples=100, deadline=None)
@given(commands=st.lists(st.sampled_from(COMMANDS), min_size=2, max_size=12))
def test_without_pipelining_everything_after_the_first_of_a_burst_is_early(
    commands: list[bytes],
) -> None:
    s = Session(extensions=NO_PIPELINING, config=FLAG)
    s.feed(EHLO)
    events = s.feed(b"".join(commands))
    assert len(events) == len(commands)
    assert [e.unauthorized_pipelining for e in events] == [False] + [True] * (len(commands) - 1)


@pytest.mark.parametrize(
    ("first", "early"),
    [
        (b"AUTH LOGIN\r\n", True),  # refused (503: AUTH not advertised), still ends a group
        (b"DATA x\r\n", True),  # refused (501), still ends a group
        (b"QUIT x\r\n", True),
        (b"dXNlcm5hbWU=\r\n", True),  # garbage: an unknown verb ends a group
        (b"MAIL FROM:<bad\r\n", False),  # refused MAIL may be followed
        (b"RCPT TO:<b@y.test>\r\n", False),  # out of sequence, may be followed
        (b"RSET x\r\n", False),
        (b"HELP \x01\r\n", False),  # a control character: refused
        (b"NOOP " + b"x" * 600 + b"\r\n", False),  # too long to read: no verb
    ],
)
def test_a_refused_line_counts_by_its_verb(first: bytes, early: bool) -> None:
    s = Session(extensions=("PIPELINING", "8BITMIME"), config=FLAG)
    s.feed(EHLO)
    events = s.feed(first + b"RSET\r\n")
    assert isinstance(events[0], CommandRejected), events
    assert flags(events)[-1] == ("ResetReceived", early)


def test_credentials_behind_a_refused_auth_are_refused_with_pipelining() -> None:
    s = Session(extensions=("PIPELINING",), config=REJECT)
    s.feed(EHLO)
    events = s.feed(b"AUTH LOGIN\r\nYWxpY2U=\r\naHVudGVyMg==\r\n")
    assert [type(e).__name__ for e in events] == ["CommandRejected", "CommandRejected"]
    assert [e.reply.code for e in events] == [503, 554]  # type: ignore[attr-defined]
    assert events[1].line == b"<redacted>"  # type: ignore[attr-defined]
    assert s.conn.state is ServerState.CLOSED


@pytest.mark.parametrize("extensions", [PIPELINING, NO_PIPELINING])
def test_a_command_behind_the_first_ehlo_is_early(extensions: tuple[str, ...]) -> None:
    """Before the EHLO reply nothing is advertised, and EHLO ends a group anyway."""
    s = Session(extensions=extensions, config=FLAG)
    events = s.feed(EHLO + b"MAIL FROM:<a@x.test>\r\n")
    assert flags(events) == [("EhloReceived", False), ("MailReceived", True)]


def test_after_helo_the_client_is_in_lock_step() -> None:
    """HELO advertises nothing (RFC 5321 §4.1.1.1), so PIPELINING is not in force."""
    s = Session(extensions=PIPELINING, config=FLAG)
    s.feed(b"HELO client.test\r\n")
    events = s.feed(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n")
    assert flags(events) == [("MailReceived", False), ("RcptReceived", True)]
