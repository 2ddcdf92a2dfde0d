"""RFC 9422 LIMITS on the server side: the engine holds the client to the RCPTMAX and
MAILMAX of the EHLO reply its caller sent (452 4.5.3 past RCPTMAX, RFC 5321
§4.5.3.1.10; 451 4.5.3 past MAILMAX, every MAIL counted), within
``ServerConfig.max_recipients``; ``limits_keyword`` writes the keyword; the built-in
server advertises ``rcptmax``/``mailmax`` and ``smtpproto serve --rcptmax/--mailmax``
sets them."""

from __future__ import annotations

from typing import Any

import pytest

from server_support import DEFAULT_EXTENSIONS, Session
from smtpproto.builtin_server.backend import Backend
from smtpproto.server_engine.config import ServerConfig
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import CommandRejected, MailReceived
from smtpproto.server_engine.replies import limits_keyword
from smtpproto.server_engine.states import ServerState

HELLO = b"EHLO c.test\r\n"
MAIL = b"MAIL FROM:<a@x.test>\r\n"


def rcpts(count: int) -> bytes:
    return b"".join(b"RCPT TO:<r%d@y.test>\r\n" % i for i in range(count))


def limited(*limits: str, config: ServerConfig | None = None) -> Session:
    return Session(extensions=(*DEFAULT_EXTENSIONS, *limits), config=config)


def last_reply(s: Session) -> bytes:
    return bytes(s.out).rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]


@pytest.mark.parametrize("rcptmax", [1, 2, 5])
def test_rcpt_past_the_advertised_rcptmax_gets_452_4_5_3(rcptmax: int) -> None:
    s = limited(f"LIMITS RCPTMAX={rcptmax}")
    s.feed(HELLO + MAIL + rcpts(rcptmax + 2))
    assert s.codes()[-(rcptmax + 2) :] == [250] * rcptmax + [452, 452]
    assert last_reply(s) == b"452 4.5.3 Too many recipients"
    assert len(s.conn.recipients) == rcptmax
    refused = s.of(CommandRejected)
    assert len(refused) == 2 and all(e.reply.code == 452 for e in refused)  # type: ignore[attr-defined]
    # The next transaction takes RCPTMAX again; the session is unharmed.
    s.feed(b"RSET\r\n" + MAIL + rcpts(rcptmax) + b"NOOP\r\n")
    assert s.codes()[-(rcptmax + 1) :] == [250] * (rcptmax + 1)


def test_refused_recipients_do_not_count_against_rcptmax() -> None:
    # RCPTMAX bounds what one transaction takes: a RCPT the policy refused took nothing.
    def policy(event: Any) -> Any:
        from smtpproto.server_engine.events import RcptReceived
        from smtpproto.server_engine.replies import mailbox_unavailable

        if isinstance(event, RcptReceived) and event.recipient == "r0@y.test":
            return mailbox_unavailable()
        return None

    s = Session(extensions=(*DEFAULT_EXTENSIONS, "LIMITS RCPTMAX=2"), policy=policy)
    s.feed(HELLO + MAIL + rcpts(4))
    assert s.codes()[-4:] == [550, 250, 250, 452]


@pytest.mark.parametrize(("config_bound", "advertised", "taken"), [(1, 5, 1), (5, 2, 2), (3, 3, 3)])
def test_the_lower_of_config_and_advertised_bound_wins(
    config_bound: int, advertised: int, taken: int
) -> None:
    s = limited(f"LIMITS RCPTMAX={advertised}", config=ServerConfig(max_recipients=config_bound))
    s.feed(HELLO + MAIL + rcpts(6))
    assert len(s.conn.recipients) == taken
    assert s.codes()[-6:] == [250] * taken + [452] * (6 - taken)


@pytest.mark.parametrize(
    "keyword",
    [
        "LIMITS RCPTMAX=0",
        "LIMITS RCPTMAX=abc",
        "LIMITS RCPTMAX=1000000",
        "LIMITS RCPTMAX=",
        "LIMITS RCPTMAX",
        "LIMITS",
        "LIMITS RCPTMAX=-1",
        "LIMITS RCPTDOMAINMAX=1",
    ],
)
def test_a_malformed_or_other_limit_is_not_enforced(keyword: str) -> None:
    s = limited(keyword, config=ServerConfig(max_recipients=4))
    s.feed(HELLO + MAIL + rcpts(5))
    assert s.codes()[-5:] == [250, 250, 250, 250, 452]


def test_names_are_case_insensitive_and_the_first_of_a_repeated_name_counts() -> None:
    s = limited("LIMITS rcptmax=2 RCPTMAX=4 MailMax=1")
    s.feed(HELLO + MAIL + rcpts(3) + b"RSET\r\n" + MAIL)
    assert s.codes()[-6:] == [250, 250, 250, 452, 250, 451]


def test_mail_past_mailmax_gets_451_and_the_session_stays_usable() -> None:
    s = limited("LIMITS MAILMAX=2")
    s.feed(HELLO + MAIL + rcpts(1) + b"RSET\r\n" + MAIL + b"RSET\r\n" + MAIL)
    assert s.codes()[-1] == 451
    assert last_reply(s) == b"451 4.5.3 Too many transactions in this session, try a new connection"
    assert s.conn.state is ServerState.READY  # no transaction was started
    s.feed(b"NOOP\r\n" + MAIL + b"QUIT\r\n")
    assert s.codes()[-3:] == [250, 451, 221]
    assert len(s.of(MailReceived)) == 2


def test_every_mail_counts_against_mailmax_refused_or_not() -> None:
    # RFC 9422 §4.1: all MAIL FROM commands count, whether they succeed or fail.
    s = limited("LIMITS MAILMAX=2")
    s.feed(HELLO + b"MAIL FROM:<bad\r\n" + MAIL + b"RSET\r\n" + MAIL)
    assert s.codes()[-4:] == [501, 250, 250, 451]


def test_a_new_ehlo_keeps_the_count_and_tls_starts_it_over() -> None:
    s = limited("LIMITS MAILMAX=1")
    s.feed(HELLO + MAIL + b"RSET\r\n" + HELLO + MAIL)
    assert s.codes()[-2:] == [250, 451]  # the EHLO, then the second MAIL of the session
    s.feed(b"STARTTLS\r\n")
    assert s.conn.state is ServerState.TLS_HANDSHAKE
    s.conn.tls_established()
    s.feed(HELLO + MAIL)
    assert s.codes()[-1] == 250  # a new session (RFC 3207 §4.2)


def test_helo_has_no_limits() -> None:
    s = limited("LIMITS RCPTMAX=1 MAILMAX=1", config=ServerConfig(max_recipients=3))
    s.feed(b"HELO c.test\r\n" + MAIL + rcpts(4) + b"RSET\r\n" + MAIL)
    assert s.codes()[-6:] == [250, 250, 250, 452, 250, 250]


def test_lmtp_limits() -> None:
    s = Session(extensions=("PIPELINING", "LIMITS RCPTMAX=2 MAILMAX=1"), lmtp=True)
    s.feed(b"LHLO c.test\r\n" + MAIL + rcpts(3) + b"RSET\r\n" + MAIL)
    assert s.codes()[-6:] == [250, 250, 250, 452, 250, 451]


def test_without_limits_the_config_bound_still_holds() -> None:
    s = Session(config=ServerConfig(max_recipients=2))
    s.feed(HELLO + MAIL + rcpts(3))
    assert s.codes()[-3:] == [250, 250, 452]
    for _ in range(3):  # no MAILMAX: transactions are not counted
        s.feed(b"RSET\r\n" + MAIL)
        assert s.codes()[-1] == 250


def test_limits_keyword() -> None:
    assert limits_keyword() is None
    assert limits_keyword(rcptmax=50) == "LIMITS RCPTMAX=50"
    assert limits_keyword(mailmax=10) == "LIMITS MAILMAX=10"
    assert limits_keyword(rcptmax=1, mailmax=999_999) == "LIMITS RCPTMAX=1 MAILMAX=999999"


@pytest.mark.parametrize("bad", [0, -1, 1_000_000, True, False, 2.0, "5", float("nan")])
@pytest.mark.parametrize("name", ["rcptmax", "mailmax"])
def test_limits_keyword_refuses_a_bad_value_naming_it(name: str, bad: object) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be an int in 1..999999"):
        limits_keyword(**{name: bad})  # type: ignore[arg-type]  # deliberately wrong
    with pytest.raises(ValueError, match=f"^{name} must be"):
        Backend(**{name: bad})  # type: ignore[arg-type]  # deliberately wrong


def test_the_built_in_session_advertises_the_backends_limits() -> None:
    conn = ServerConnection()
    assert "LIMITS" not in " ".join(Backend().new_session(conn).extensions())
    session = Backend(rcptmax=3, mailmax=7).new_session(conn)
    assert "LIMITS RCPTMAX=3 MAILMAX=7" in session.extensions()
