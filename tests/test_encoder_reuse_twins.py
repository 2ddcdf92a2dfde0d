"""The engine's DATA encoder, reused across the messages of a connection
(``replies._data_reply`` resets the last one of the same kind at each 354), behaves
identically with either twin: the same connection driven through any sequence of
messages — 7-bit and BODY=8BITMIME mixed, content cut anywhere (a CR ending one
message, dots, bare line ends, 8-bit, NUL, over-long lines), raw content, a message
refused after its 354 (the connection's sticky ERROR) — writes the same bytes and
raises the same errors, call by call, with the Python and the compiled encoder
(``ALL_ENCODERS``: the Python one alone under ``SMTPPROTO_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

from typing import Any, Literal
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest_datacodec import ALL_ENCODERS
from engine_helpers import EHLO_ALL, feed, greeted
from smtpproto.client_engine import replies
from smtpproto.client_engine.events import (
    Content,
    Data,
    EndOfContent,
    Mail,
    RawContent,
    Rcpt,
    TransactionResult,
)
from smtpproto.wire.errors import ProtocolError

Body = Literal["8BITMIME"] | None
#: Content pieces: mostly what every message may hold (line ends cut anywhere, dots),
#: now and then what a message of one kind or any kind refuses (8-bit, NUL, a long line).
PIECES = [b"a", b"\r", b"\n", b"\r", b"\n", b".", b"\r\n", b"..\r\n"] * 4 + [
    b"\xe9",
    b"\x00",
    b"x" * 500,
]

messages = st.lists(
    st.tuples(
        st.sampled_from([None, "8BITMIME"]),
        st.lists(st.sampled_from(PIECES), max_size=5),  # the chunks of one message
        st.sampled_from([False] * 5 + [True]),  # now and then the first chunk raw
    ),
    min_size=1,
    max_size=6,
)


def run_messages(encoder_cls: type[Any], plan: list[tuple[Body, list[bytes], bool]]) -> Any:
    """Every call's output (or the error it raised) for ``plan`` on a new connection
    whose DATA encoders are ``encoder_cls``."""

    def make(body: str | None, *, enforce_line_length: bool, allow_nul: bool) -> Any:
        limit = 998 if enforce_line_length else None
        eight = body == "8BITMIME"
        return encoder_cls(max_line_length=limit, allow_nul=allow_nul, allow_8bit=eight)

    trace: list[object] = []
    with mock.patch.object(replies, "content_encoder", make):
        conn = greeted(None, EHLO_ALL)  # the selected reply parser
        for body, chunks, raw in plan:
            try:
                for command in (
                    Mail(sender="a@example.org", body=body),
                    Rcpt(recipient="b@example.org"),
                    Data(),
                ):
                    trace.append(conn.send(command))
                events = feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
                trace.append([type(e).__name__ for e in events])
                for index, chunk in enumerate(chunks):
                    kind = RawContent if raw and index == 0 else Content
                    trace.append(conn.send(kind(data=chunk)))
                trace.append(conn.send(EndOfContent()))
                events = feed(conn, b"250 queued\r\n")
                trace.append([type(e) is TransactionResult for e in events])
            except ProtocolError as error:
                trace.append((type(error).__name__, str(error), conn.state.name))
    return trace


@settings(max_examples=300)
@given(plan=messages)
def test_both_encoder_twins_reused_across_messages_write_the_same(
    plan: list[tuple[Body, list[bytes], bool]],
) -> None:
    first, *others = (run_messages(cls, plan) for cls in ALL_ENCODERS)
    assert all(other == first for other in others)
