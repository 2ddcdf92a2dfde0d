"""ClientConnection <-> ServerConnection in memory: whole sessions, byte-exact delivery."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server_support import Session
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    NEED_DATA,
    Bdat,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Event,
    Mail,
    Quit,
    Rcpt,
    TransactionResult,
)
from smtpproto.server_engine.events import MessageComplete, RcptReceived
from smtpproto.server_engine.replies import mailbox_unavailable

EXTENSIONS = ("PIPELINING", "SIZE 1000000", "8BITMIME", "CHUNKING", "ENHANCEDSTATUSCODES")


def _normalise(data: bytes) -> bytes:
    """CRLF line ends and no NUL: content the client encoder sends without options."""
    return data.replace(b"\x00", b"").replace(b"\r", b"").replace(b"\n", b"\r\n")


class Wire:
    """A client engine and a server engine joined by in-memory byte pipes."""

    def __init__(self, session: Session) -> None:
        self.client = ClientConnection()
        self.server = session
        self.events: list[Event] = []
        self.to_client = bytearray(session.out)
        self.sent_to_client = len(session.out)

    def run(self, *commands: object) -> list[Event]:
        """Send the commands (pipelined when allowed), then exchange until quiet."""
        to_server = bytearray()
        for command in commands:
            to_server += self.client.send(command)  # type: ignore[arg-type]  # Command values
        for _ in range(1000):
            if to_server:
                self.server.feed(bytes(to_server))
                to_server.clear()
            fresh = bytes(self.server.out[self.sent_to_client :])
            self.sent_to_client = len(self.server.out)
            if fresh or self.to_client:
                self.client.receive_data(bytes(self.to_client) + fresh)
                self.to_client.clear()
            progressed = bool(fresh)
            while (event := self.client.next_event()) is not NEED_DATA:
                assert isinstance(event, Event)
                self.events.append(event)
                progressed = True
                if type(event).__name__ == "ConnectionClosed":
                    return self.events
            if not progressed and not to_server:
                return self.events
        raise AssertionError("the two engines never settled")


def start(session: Session) -> Wire:
    wire = Wire(session)
    wire.run()
    wire.run(Ehlo(hostname="client.test"))
    return wire


def test_whole_session_data_byte_exact() -> None:
    body = b"Subject: t\r\n\r\n.dot line\r\nline two\r\n..two dots\r\n"
    server = Session(extensions=EXTENSIONS)
    wire = start(server)
    wire.run(Mail(sender="a@x.test"), Rcpt(recipient="b@y.test"), Data())
    wire.run(Content(data=body), EndOfContent())
    (done,) = server.of(MessageComplete)
    assert server.content() == body
    assert isinstance(done, MessageComplete) and done.recipients == ("b@y.test",)
    assert any(isinstance(e, TransactionResult) for e in wire.events)
    wire.run(Quit())
    assert server.conn.state.name == "CLOSED"


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=300).map(_normalise))
def test_data_round_trip_any_body(body: bytes) -> None:
    server = Session(extensions=EXTENSIONS)
    wire = start(server)
    wire.run(Mail(sender="a@x.test", body="8BITMIME"), Rcpt(recipient="b@y.test"), Data())
    wire.run(Content(data=body), EndOfContent())
    expected = body if body.endswith(b"\r\n") or not body else body + b"\r\n"
    assert server.content() == expected
    assert len(server.of(MessageComplete)) == 1


def test_bdat_round_trip_binary_exact() -> None:
    chunks = [b"\x00\r\n.\r\nQUIT\r\n", b"\xff" * 1000, b"tail"]
    server = Session(extensions=(*EXTENSIONS, "BINARYMIME"))
    wire = start(server)
    wire.run(
        Mail(sender="a@x.test", body="BINARYMIME"),
        Rcpt(recipient="b@y.test"),
        Bdat(data=chunks[0]),
        Bdat(data=chunks[1]),
        Bdat(data=chunks[2], last=True),
    )
    assert server.content() == b"".join(chunks)
    (done,) = server.of(MessageComplete)
    assert isinstance(done, MessageComplete) and done.bdat


def test_refused_recipient_reported_to_client() -> None:
    server = Session(
        extensions=EXTENSIONS,
        policy=lambda e: (
            mailbox_unavailable()
            if isinstance(e, RcptReceived) and e.recipient.startswith("bad")
            else None
        ),
    )
    wire = start(server)
    wire.run(
        Mail(sender="a@x.test"),
        Rcpt(recipient="bad@y.test"),
        Rcpt(recipient="good@y.test"),
        Data(),
    )
    wire.run(Content(data=b"hi\r\n"), EndOfContent())
    (done,) = server.of(MessageComplete)
    assert isinstance(done, MessageComplete) and done.recipients == ("good@y.test",)
    results = [e for e in wire.events if isinstance(e, TransactionResult)]
    assert results
