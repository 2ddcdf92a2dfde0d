"""``ServerConnection.receive_content``: a read of DATA content in one engine step (the
decoder twin over the whole read, the end of the content made with it) against the
general path (``receive_data`` and ``next_event``, one event at a time).

A read that starts the content or continues it, with nothing buffered or owed, goes
through ``receive_content``; whatever it holds (the whole message and its ``CRLF.CRLF``,
part of it, the next pipelined commands behind the end, the smuggling sequences that must
not end it, bare CR/LF, NUL, a line over the decoder's bound, more than the size
limit), the events, replies and states are the general path's (``_agree`` of
``test_server_fast_path`` runs the general path, the fast path, and the front end's
order: ``receive_line``, then ``receive_content``, then ``receive_data``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto.server_engine.config import ServerConfig
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import (
    CommandRejected,
    ContentReceived,
    MessageComplete,
    ServerEvent,
)
from smtpproto.wire.errors import RemoteProtocolError
from smtpproto.wire.need_data import NEED_DATA
from smtpproto.wire.reply import Reply
from test_server_fast_path import EXTENSIONS, MAIL, RCPT, _agree, _ready, _snapshot

#: Content pieces: plain lines, dots at line starts, the smuggling sequences that are
#: content (``\n.\n``, ``\r.\r\n``, ``\r\n.\n``, ``\n.\r\n``), bare CR/LF, NUL, 8-bit,
#: a line over a small ``max_data_line``, and the real end in the middle of a piece.
PIECES = [
    b"Subject: hi\r\n\r\n",
    b"body line\r\n",
    b"..leading dot\r\n",
    b".\r\n.",
    b"\n.\n",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\n.\r\n",
    b"\r\n.\r",
    b"a\rb\r\n",
    b"c\nd\r\n",
    b"\x00\r\n",
    b"\xff\xfe\r\n",
    b"x" * 150,
    b"y" * 1001,
    b"\r\n",
    b"\r",
    b".",
]
#: What may follow the end of the content in the same read (pipelined).
AFTER = [b"", MAIL, b"RSET\r\n", b"QUIT\r\n", MAIL + RCPT + b"DATA\r\n", b"NOOP", b"\r\n"]


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.lists(st.sampled_from(PIECES), max_size=10).map(b"".join),
            st.lists(st.integers(1, 400), max_size=3),  # where the content read is cut
            st.sampled_from(AFTER),
        ),
        min_size=1,
        max_size=3,
    ),
    accepts=st.lists(st.sampled_from([True, True, True, False]), min_size=1, max_size=4),
    extensions=st.lists(st.sampled_from(EXTENSIONS), unique=True),
    lmtp=st.booleans(),
    max_message_size=st.sampled_from([None, 40, 400]),
    max_data_line=st.sampled_from([8192, 1000]),
    reject_early=st.booleans(),
)
def test_content_reads_agree_with_the_general_path(
    messages: list[tuple[bytes, list[int], bytes]],
    accepts: list[bool],
    extensions: list[str],
    lmtp: bool,
    max_message_size: int | None,
    max_data_line: int,
    reject_early: bool,
) -> None:
    chunks: list[bytes] = []
    for content, cuts, after in messages:
        chunks += [MAIL, RCPT, b"DATA\r\n"]  # each read alone, as smtp-source writes them
        read = content + b"\r\n.\r\n" + after
        points = sorted({cut for cut in cuts if cut < len(read)})
        chunks += [read[a:b] for a, b in zip([0, *points], [*points, len(read)], strict=True)]
    config = ServerConfig(
        max_message_size=max_message_size,
        max_data_line=max_data_line,
        unauthorized_pipelining="reject" if reject_early else "flag",
    )
    _agree(config, chunks, accepts, sorted(extensions), lmtp=lmtp)


def _in_data(extensions: list[str] | None = None) -> ServerConnection:
    conn = _ready(extensions)
    for line, code in ((MAIL, 250), (RCPT, 250), (b"DATA\r\n", 354)):
        event = conn.receive_line(line)
        assert isinstance(event, ServerEvent)
        conn.send(Reply(code, (b"ok",)))
    assert conn.state.name == "DATA"
    return conn


def test_a_whole_message_in_one_read_is_one_step() -> None:
    conn = _in_data(["PIPELINING"])
    got = conn.receive_content(b"Subject: x\r\n\r\n..hi\r\n.\r\nRSET\r\n")
    assert got is not None
    content, end = got
    assert content == ContentReceived(data=b"Subject: x\r\n\r\n.hi\r\n")
    assert end == MessageComplete(
        sender="a@x.test", recipients=("b@y.test",), size=19, bdat=False, bare_line_endings=0
    )
    assert conn.replies_due == 1
    conn.send(Reply(250, (b"ok",)))
    assert conn.state.name == "READY"
    assert type(conn.next_event()).__name__ == "ResetReceived"  # the rest stayed buffered


def test_content_that_does_not_end_waits_for_more() -> None:
    conn = _in_data()
    assert conn.receive_content(b"part one\r\n.") == (ContentReceived(data=b"part one\r\n"), None)
    assert conn.next_event() is NEED_DATA
    content, end = conn.receive_content(b"\r\n") or (None, None)
    assert content is None and isinstance(end, MessageComplete) and end.size == 10


def test_smuggling_sequences_do_not_end_the_content() -> None:
    conn = _in_data()
    got = conn.receive_content(b"a\n.\nb\r.\r\nc\r\n.\nMAIL FROM:<e@vil>\r\n")
    assert got is not None and got[1] is None  # still content
    assert conn.state.name == "DATA"


def test_a_message_over_the_size_limit_is_refused_at_its_end() -> None:
    conn = _ready(["SIZE 10"])
    for line, code in ((MAIL, 250), (RCPT, 250), (b"DATA\r\n", 354)):
        conn.receive_line(line)
        conn.send(Reply(code, (b"ok",)))
    got = conn.receive_content(b"0123456789abc\r\n.\r\n")
    assert got is not None
    content, end = got
    assert content is None  # content past the limit is not reported (RFC 1870 section 6.2)
    assert isinstance(end, CommandRejected) and end.reply.code == 552


def test_a_line_over_the_bound_is_a_sticky_error() -> None:
    conn = ServerConnection(config=ServerConfig(max_data_line=1000))
    conn.send(Reply(220, (b"hi",)))
    conn.receive_data(b"EHLO c\r\n")
    conn.next_event()
    conn.send(Reply(250, (b"hi",)))
    for line, code in ((MAIL, 250), (RCPT, 250), (b"DATA\r\n", 354)):
        conn.receive_line(line)
        conn.send(Reply(code, (b"ok",)))
    with pytest.raises(RemoteProtocolError):
        conn.receive_content(b"x" * 1001 + b"\r\n.\r\n")
    assert conn.state.name == "ERROR"


@pytest.mark.parametrize(
    "setup",
    ["command state", "buffered", "eof", "empty", "bytearray", "early", "over the cap"],
)
def test_receive_content_leaves_everything_else_to_receive_data(setup: str) -> None:
    conn = _in_data()
    data: object = b"hi\r\n.\r\n"
    if setup == "command state":
        conn = _ready()
        data = MAIL
    elif setup == "buffered":
        conn.receive_data(b"x")
        assert isinstance(conn.next_event(), ContentReceived)
        conn.receive_data(b"\r")  # held by the engine until next_event
    elif setup == "eof":
        conn.receive_data(b"")
    elif setup == "empty":
        data = b""
    elif setup == "bytearray":
        data = bytearray(b"hi\r\n.\r\n")
    elif setup == "early":  # content written before the 354 (no PIPELINING)
        conn = _ready()
        conn.receive_line(MAIL)
        conn.send(Reply(250, (b"ok",)))
        conn.receive_line(RCPT)
        conn.send(Reply(250, (b"ok",)))
        conn.receive_data(b"DATA\r\nhi")
        assert isinstance(conn.next_event(), ServerEvent)
        conn.send(Reply(354, (b"go",)))
        data = b"\r\n.\r\n"
    elif setup == "over the cap":
        conn.config = ServerConfig(max_receive_buffer=262144)
        data = b"x" * 262145
    before = (_snapshot(conn), bytes(conn._buf), conn._pending_event)
    assert conn.receive_content(data) is None  # type: ignore[arg-type]
    assert (_snapshot(conn), bytes(conn._buf), conn._pending_event) == before
