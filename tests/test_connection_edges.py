"""Engine edge cases: bad input types, reply limits, odd reply codes, LMTP corners."""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import EHLO_PIPELINING, drain, feed, greeted, make_conn, names
from smtpproto.client_engine.capabilities import Capabilities
from smtpproto.client_engine.config import ClientConfig, Timeouts
from smtpproto.client_engine.events import (
    Auth,
    Bdat,
    CommandReply,
    Content,
    Data,
    Ehlo,
    EhloAccepted,
    EndOfContent,
    Greeting,
    Mail,
    Rcpt,
    ReadyForContent,
    TransactionResult,
    positional,
)
from smtpproto.client_engine.states import ClientState
from smtpproto.sasl import Plain
from smtpproto.wire.errors import LocalProtocolError, RemoteProtocolError
from smtpproto.wire.reply import Reply


def _open_data(conn: Any) -> None:
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)


@pytest.mark.parametrize("data", ["250 ok\r\n", 250, None])
def test_receive_data_needs_bytes(parser_cls: Any, data: Any) -> None:
    conn = make_conn(parser_cls)
    with pytest.raises(LocalProtocolError, match="needs bytes"):
        conn.receive_data(data)


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_receive_data_accepts_bytes_like(parser_cls: Any, kind: Any) -> None:
    conn = make_conn(parser_cls)
    conn.receive_data(kind(b"220 hi\r\n"))
    assert names(drain(conn)) == ["Greeting"]


@pytest.mark.parametrize("data", [b"", bytearray(), memoryview(b"")])
def test_empty_bytes_like_is_eof(parser_cls: Any, data: Any) -> None:
    conn = greeted(parser_cls)
    conn.receive_data(data)
    assert names(drain(conn)) == ["ConnectionClosed"]


def test_reply_line_limit_at_and_past_bound(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, max_reply_line_length=600)
    line = b"220 " + b"x" * (600 - 6) + b"\r\n"
    assert len(line) == 600
    assert names(feed(conn, line)) == ["Greeting"]
    conn = make_conn(parser_cls, max_reply_line_length=600)
    conn.receive_data(b"220 " + b"x" * (600 - 5) + b"\r\n")
    with pytest.raises(RemoteProtocolError, match="line length"):
        drain(conn)
    assert conn.state is ClientState.ERROR


def test_reply_line_count_limit(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, max_reply_lines=3)
    assert names(feed(conn, b"220-a\r\n220-b\r\n220 c\r\n")) == ["Greeting"]
    conn = make_conn(parser_cls, max_reply_lines=3)
    conn.receive_data(b"220-a\r\n220-b\r\n220-c\r\n220 d\r\n")
    with pytest.raises(RemoteProtocolError, match="line count"):
        drain(conn)


def test_data_answered_with_2xx_is_a_protocol_error(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    _open_data(conn)
    conn.receive_data(b"250 ok\r\n250 ok\r\n250 sure\r\n")
    with pytest.raises(RemoteProtocolError, match="not 354"):
        drain(conn)


def test_content_after_end_is_refused(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    _open_data(conn)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(EndOfContent())
    with pytest.raises(LocalProtocolError, match="READY"):
        conn.send(Content(data=b"late"))


def test_auth_not_allowed_inside_a_transaction(parser_cls: Any) -> None:
    conn = greeted(parser_cls, allow_cleartext_auth=True)
    conn.send(Mail(sender="a@example.org"))
    with pytest.raises(LocalProtocolError, match="TRANSACTION"):
        conn.send(Auth(mechanism=Plain("u", "p")))


def test_ehlo_inside_transaction_abandons_it(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Ehlo(hostname="c.example"))
    events = feed(conn, b"250 ok\r\n250 ok\r\n" + EHLO_PIPELINING)
    assert names(events) == ["CommandReply", "CommandReply", "EhloAccepted"]
    assert conn.state is ClientState.READY
    with pytest.raises(LocalProtocolError):
        conn.send(Data())


def test_lmtp_421_midway_fills_remaining_recipients(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PIPELINING, lmtp=True)
    for command in (
        Mail(sender="a@example.org"),
        Rcpt(recipient="b@example.org"),
        Rcpt(recipient="c@example.org"),
        Rcpt(recipient="d@example.org"),
        Data(),
    ):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(EndOfContent())
    events = feed(conn, b"250 b ok\r\n421 shutting down\r\n")
    assert names(events) == ["TransactionResult", "ServiceClosing"]
    result = events[0]
    assert isinstance(result, TransactionResult)
    assert [(a, r.code) for a, r in result.lmtp_replies] == [
        ("b@example.org", 250),
        ("c@example.org", 421),
        ("d@example.org", 421),
    ]
    assert result.delivered == ("b@example.org",)


def test_lmtp_bdat_last_after_failed_chunk_expects_one_reply(parser_cls: Any) -> None:
    conn = greeted(parser_cls, b"250-lmtp\r\n250-PIPELINING\r\n250 CHUNKING\r\n", lmtp=True)
    for command in (
        Mail(sender="a@example.org"),
        Rcpt(recipient="b@example.org"),
        Rcpt(recipient="c@example.org"),
        Bdat(data=b"part"),
        Bdat(data=b"end", last=True),
    ):
        conn.send(command)
    events = feed(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n552 too big\r\n503 no transaction\r\n")
    result = events[-1]
    assert isinstance(result, TransactionResult)
    assert result.data_reply is not None and result.data_reply.code == 552
    assert result.delivered == ()
    assert not conn.awaiting_reply


def test_outstanding_lists_commands_in_order(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    mail, rcpt = Mail(sender="a@example.org"), Rcpt(recipient="b@example.org")
    conn.send(mail)
    conn.send(rcpt)
    assert conn.outstanding == (mail, rcpt)
    feed(conn, b"250 ok\r\n")
    assert conn.outstanding == (rcpt,)


def test_commands_are_values() -> None:
    assert Mail(sender="a@example.org") == Mail(sender="a@example.org")
    assert hash(Rcpt(recipient="b@example.org", notify=["SUCCESS"])) == hash(
        Rcpt(recipient="b@example.org", notify=("success",))
    )
    with pytest.raises(AttributeError):
        Mail(sender="a@example.org").sender = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Mail("a@example.org")  # type: ignore[misc]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Mail(sender="a@example.org", size=-1),
        lambda: Mail(sender="a@example.org", size=True),
        lambda: Mail(sender="a@example.org", body="9BIT"),  # type: ignore[arg-type]
        lambda: Mail(sender="a@example.org", ret="ALL"),  # type: ignore[arg-type]
        lambda: Mail(sender="a@example.org", envid="x" * 101),
        lambda: Mail(sender="a@example.org", envid="caf\u00e9"),
        lambda: Mail(sender="a@example.org", mt_priority=10),
        lambda: Mail(sender="a@example.org", by="soon"),
        lambda: Mail(sender="a@example.org", auth="not an address"),
        lambda: Mail(sender="<a@example.org>"),
        lambda: Rcpt(recipient=""),
        lambda: Rcpt(recipient="b@example.org", orcpt=""),
        lambda: Rcpt(recipient="a\u2028b@example.org"),
        lambda: Ehlo(hostname="bad host"),
        lambda: Ehlo(hostname="h\u00f6st.example"),
        lambda: Content(data="text"),  # type: ignore[arg-type]
        lambda: Bdat(data="text"),  # type: ignore[arg-type]
    ],
)
def test_constructors_refuse_bad_values(build: Any) -> None:
    with pytest.raises(LocalProtocolError):
        build()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_reply_line_length": 511},
        {"max_reply_lines": 0},
        {"max_reply_bytes": 600, "max_reply_line_length": 700},
        {"max_reply_lines": "10"},
        {"max_auth_rounds": 0},
        {"tls_policy": "required"},
        {"transcript": "log"},
        {"parser_factory": 3},
        {"mask_extensions": "CHUNKING"},
        # Not EHLO keywords (RFC 5321 §4.1.1.1): a non-str escaped next_event as an
        # AttributeError when the EHLO reply arrived; the others silently masked nothing.
        {"mask_extensions": (1,)},
        {"mask_extensions": (None,)},
        {"mask_extensions": ("CHUNKING ",)},
        {"mask_extensions": ("CHUNKING\r\n",)},
        {"mask_extensions": ("",)},
        {"mask_extensions": ("-PIPELINING",)},
    ],
)
def test_config_refuses_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        ClientConfig(**kwargs)


def test_config_limit_at_bound_is_accepted(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, max_reply_line_length=512, max_reply_bytes=512)
    assert names(feed(conn, b"220 " + b"x" * 506 + b"\r\n")) == ["Greeting"]


@pytest.mark.parametrize("value", [True, 0, -5, "60"])
def test_timeouts_refuse_bad_values(value: Any) -> None:
    with pytest.raises(LocalProtocolError):
        Timeouts(rcpt=value)


def test_error_while_final_reply_due_leaves_status_unknown_flag(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    _open_data(conn)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(EndOfContent())
    conn.receive_data(b"25O garbage\r\n")
    with pytest.raises(RemoteProtocolError):
        drain(conn)
    assert conn.state is ClientState.ERROR
    assert conn.final_reply_pending  # the caller reports "delivery status unknown"


def test_positional_constructors_build_the_same_values() -> None:
    reply = Reply(250, [b"ok"])
    ehlo = Ehlo(hostname="c.example")
    caps = Capabilities.none("mx")
    assert positional(Greeting)(reply) == Greeting(reply=reply)
    assert positional(ReadyForContent)(reply) == ReadyForContent(reply=reply)
    assert positional(CommandReply)(ehlo, reply) == CommandReply(command=ehlo, reply=reply)
    assert positional(EhloAccepted)(ehlo, reply, caps) == EhloAccepted(
        command=ehlo, reply=reply, capabilities=caps
    )
    result = positional(TransactionResult)("a@x.y", reply, (("b@x.y", reply),), reply, ())
    assert result == TransactionResult(
        sender="a@x.y",
        sender_reply=reply,
        recipients=(("b@x.y", reply),),
        data_reply=reply,
        lmtp_replies=(),
    )
    assert result.delivered == ("b@x.y",)
    with pytest.raises(TypeError):
        positional(TransactionResult)("too", "few")
    with pytest.raises(TypeError):
        positional(Mail)  # type: ignore[type-var]  # validates in __post_init__


def test_content_from_a_strided_memoryview(parser_cls: Any) -> None:
    # Content accepts any memoryview; a non-contiguous one made the compiled DATA
    # encoder raise BufferError out of send() instead of encoding the octets.
    conn = greeted(parser_cls, EHLO_PIPELINING)
    conn.send(Mail(sender="a@b.example"))
    conn.send(Rcpt(recipient="c@d.example"))
    conn.send(Data())
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert conn.send(Content(data=memoryview(b"h-i-\n-.-x")[::2])) == b"hi\r\n..x"
    assert conn.send(EndOfContent()) == b"\r\n.\r\n"


@pytest.mark.parametrize(
    ("before_eof", "closed"),
    [
        (b"", True),  # EOF with the MAIL reply due
        (b"250-ok\r\n", True),  # EOF mid-reply
        (b"25O ok\r\n", False),  # a malformed reply, then EOF: the reply is the error
    ],
)
def test_peer_closed_tells_a_lost_connection_from_a_bad_reply(
    parser_cls: Any, before_eof: bytes, closed: bool
) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    if before_eof:
        conn.receive_data(before_eof)
    conn.receive_data(b"")  # both queued before next_event runs
    assert not conn.peer_closed
    with pytest.raises(RemoteProtocolError):
        drain(conn)
    assert conn.peer_closed is closed
