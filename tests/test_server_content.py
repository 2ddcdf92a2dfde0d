"""ServerConnection content: DATA end detection (anti-smuggling), BDAT sizes, SIZE, LMTP."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server_support import Session
from smtpproto.server_engine.config import ServerConfig
from smtpproto.server_engine.events import (
    BdatStarted,
    ChunkComplete,
    CommandRejected,
    ContentReceived,
    DataRequested,
    EhloReceived,
    MessageComplete,
    NoopReceived,
    QuitReceived,
    RcptReceived,
    UnknownCommand,
)
from smtpproto.server_engine.replies import mailbox_unavailable, ok

ENVELOPE = b"EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"

SMUGGLING = [
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\r.\r\n",
    b"\n..\r\n",
    b"\r\n.\x00\r\n",
]


def _no_line_ends(data: bytes) -> bytes:
    return data.replace(b"\r", b"").replace(b"\n", b"")


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return [p for p in pieces if p]


@pytest.mark.parametrize("variant", SMUGGLING)
def test_smuggling_variant_never_ends_data(variant: bytes) -> None:
    s = Session()
    smuggled = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\n"
    s.feed(ENVELOPE + b"DATA\r\nhello" + variant + smuggled + b"more\r\n.\r\nQUIT\r\n")
    assert len(s.of(MessageComplete)) == 1
    assert len(s.of(DataRequested)) == 1  # the smuggled DATA was content, not a command
    assert smuggled in s.content()
    assert s.codes() == [220, 250, 250, 250, 354, 250, 221]


@settings(max_examples=150, deadline=None)
@given(
    variant=st.sampled_from(SMUGGLING),
    body=st.binary(max_size=60).filter(lambda b: b"\r\n.\r\n" not in b"\r\n" + b),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_smuggling_with_random_chunking(variant: bytes, body: bytes, cuts: list[int]) -> None:
    payload = b"DATA\r\n" + body + variant + b"RSET\r\nQUIT\r\n"
    # the payload never contains CRLF.CRLF after DATA unless body+variant made one
    content = b"\r\n" + body + variant + b"RSET\r\nQUIT\r\n"
    if b"\r\n.\r\n" in content:
        return
    s = Session()
    s.feed(ENVELOPE)
    s.feed(*chunked(payload, cuts))
    assert not s.of(MessageComplete) and not s.of(QuitReceived)
    s.feed(b"\r\n.\r\n")
    assert len(s.of(MessageComplete)) == 1


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(
        st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=8
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_crlf_dot_crlf_ends_data_and_unstuffs(lines: list[bytes], cuts: list[int]) -> None:
    body = b"".join(line + b"\r\n" for line in lines)
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    s = Session()
    s.feed(ENVELOPE)
    s.feed(*chunked(b"DATA\r\n" + stuffed + b".\r\nNOOP\r\n", cuts))
    assert s.content() == body
    assert len(s.of(MessageComplete)) == 1 and s.of(NoopReceived)


def test_empty_message() -> None:
    s = Session()
    s.feed(ENVELOPE + b"DATA\r\n.\r\n")
    (done,) = s.of(MessageComplete)
    assert isinstance(done, MessageComplete) and done.size == 0 and s.content() == b""


# -- BDAT -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=50), min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_bdat_sizes_exact_with_random_chunking(chunks: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(
        b"BDAT %d%s\r\n" % (len(c), b" LAST" if i == len(chunks) - 1 else b"") + c
        for i, c in enumerate(chunks)
    )
    s = Session()
    s.feed(ENVELOPE)
    s.feed(*chunked(wire + b"QUIT\r\n", cuts))
    assert s.content() == b"".join(chunks)
    assert len(s.of(ChunkComplete)) == len(chunks) - 1
    (done,) = s.of(MessageComplete)
    assert isinstance(done, MessageComplete) and done.bdat and done.size == sum(map(len, chunks))
    assert s.of(QuitReceived)


def test_bdat_binary_never_parsed_as_commands() -> None:
    evil = b"\r\n.\r\nQUIT\r\nRSET\r\n\x00\xff"
    s = Session()
    s.feed(ENVELOPE + b"BDAT %d LAST\r\n" % len(evil) + evil + b"NOOP\r\n")
    assert s.content() == evil
    assert not s.of(QuitReceived) and s.of(NoopReceived)
    assert s.of(BdatStarted) == [BdatStarted(size=len(evil), last=True)]


def test_bdat_zero_last_and_lowercase() -> None:
    s = Session()
    s.feed(ENVELOPE + b"BDAT 3\r\nabcbdat 0 last\r\n")
    assert s.content() == b"abc" and len(s.of(MessageComplete)) == 1


def test_bdat_out_of_sequence_consumes_chunk_then_503() -> None:
    s = Session()
    s.feed(b"EHLO client.test\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n")
    assert s.codes() == [220, 250, 503, 250]
    assert not s.of(QuitReceived) and not s.of(ContentReceived)


def test_bdat_without_chunking_advertised_consumed_then_502() -> None:
    s = Session(extensions=("PIPELINING",))
    s.feed(ENVELOPE + b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
    assert s.codes()[-2:] == [502, 250]
    assert not s.of(QuitReceived)


def test_bdat_bad_syntax_is_501_and_nothing_consumed() -> None:
    s = Session()
    s.feed(ENVELOPE + b"BDAT x\r\nBDAT -1\r\nBDAT 1 FIRST\r\nNOOP\r\n")
    assert s.codes()[-4:] == [501, 501, 501, 250]


def test_data_after_bdat_and_binarymime_with_data() -> None:
    s = Session()
    s.feed(ENVELOPE + b"BDAT 1\r\nxDATA\r\n")
    assert s.codes()[-1] == 503
    s = Session()
    s.feed(b"EHLO c.test\r\nMAIL FROM:<a@x.test> BODY=BINARYMIME\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
    assert s.codes()[-1] == 503


def test_error_reply_to_chunk_ends_transaction() -> None:
    s = Session(policy=lambda e: mailbox_unavailable() if isinstance(e, ChunkComplete) else None)
    s.feed(ENVELOPE + b"BDAT 1\r\nxBDAT 1 LAST\r\ny")
    assert s.codes()[-2:] == [550, 503]
    assert s.conn.sender is None


# -- SIZE ------------------------------------------------------------------------------


def test_declared_size_over_limit_552() -> None:
    s = Session()
    s.feed(b"EHLO c.test\r\nMAIL FROM:<a@x.test> SIZE=10001\r\nMAIL FROM:<a@x.test> SIZE=10000\r\n")
    assert s.codes() == [220, 250, 552, 250]


@pytest.mark.parametrize("bdat", [False, True])
def test_actual_size_over_limit_552_after_the_end(bdat: bool) -> None:
    s = Session(extensions=("SIZE 100", "CHUNKING"))
    body = b"x" * 98 + b"\r\n" + b"y" * 10 + b"\r\n"
    wire = b"BDAT %d LAST\r\n" % len(body) + body if bdat else b"DATA\r\n" + body + b".\r\n"
    s.feed(ENVELOPE + wire + b"NOOP\r\n")
    assert s.codes()[-2:] == [552, 250]
    assert not s.of(MessageComplete)
    assert len(s.content()) <= 100
    assert s.conn.sender is None  # transaction over


def test_size_exactly_at_limit_accepted() -> None:
    s = Session(extensions=("SIZE 100",))
    s.feed(ENVELOPE + b"DATA\r\n" + b"x" * 98 + b"\r\n.\r\n")
    assert len(s.of(MessageComplete)) == 1


def test_config_message_size_when_size_not_advertised() -> None:
    s = Session(extensions=("PIPELINING",), config=ServerConfig(max_message_size=10))
    s.feed(ENVELOPE + b"DATA\r\n0123456789\r\n.\r\n")
    assert s.codes()[-1] == 552


# -- LMTP ------------------------------------------------------------------------------


def test_lmtp_one_reply_per_accepted_recipient() -> None:
    refuse = {"c@y.test"}
    s = Session(
        lmtp=True,
        policy=lambda e: (
            mailbox_unavailable() if isinstance(e, RcptReceived) and e.recipient in refuse else None
        ),
    )
    s.feed(
        b"LHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
        b"RCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n"
    )
    assert s.of(EhloReceived) == [EhloReceived(domain="client.test", lmtp=True)]
    (done,) = s.of(MessageComplete)
    assert isinstance(done, MessageComplete) and done.recipients == ("b@y.test", "d@y.test")
    assert s.codes() == [220, 250, 250, 250, 550, 250, 354, 250, 250, 250]


def test_lmtp_refuses_ehlo_and_smtp_refuses_lhlo() -> None:
    s = Session(lmtp=True)
    s.feed(b"EHLO c.test\r\nHELO c.test\r\n")
    assert len(s.of(UnknownCommand)) == 2
    s = Session()
    s.feed(b"LHLO c.test\r\n")
    assert len(s.of(UnknownCommand)) == 1


def test_lmtp_replies_are_counted() -> None:
    s = Session(lmtp=True, policy=lambda e: [] if isinstance(e, MessageComplete) else None)
    s.feed(b"LHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n")
    s.feed(b"DATA\r\nx\r\n.\r\n")
    assert s.conn.replies_due == 2
    s.conn.send(ok())
    assert s.conn.replies_due == 1 and s.conn.sender == "a@x.test"
    s.conn.send(ok())
    assert s.conn.replies_due == 0 and s.conn.sender is None
    s.feed(b"NOOP\r\n")
    assert s.codes()[-1] == 250


def test_data_chunk_of_rejection_is_escaped() -> None:
    s = Session()
    s.feed(ENVELOPE + b"BDAT 99999999999999999999999\r\n")
    rejected = s.of(CommandRejected)[-1]
    assert isinstance(rejected, CommandRejected) and rejected.reply.code == 501


def test_bare_line_endings_counted_and_kept_as_content() -> None:
    s = Session()
    s.feed(ENVELOPE + b"DATA\r\na\nb\rc\r\n.\r\n")
    (done,) = s.of(MessageComplete)
    assert isinstance(done, MessageComplete) and done.bare_line_endings == 2
    assert s.content() == b"a\nb\rc\r\n"
