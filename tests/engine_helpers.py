"""Helpers for engine tests: make connections, drain events, and a scripted server.

``ScriptedServer`` is an in-memory SMTP server model good enough to drive the client
engine: it splits what the client wrote into command lines, DATA content and BDAT
chunks, and answers each command with the next reply from a per-verb script (or a
default). It records every command line and every delivered message so tests can
check what reached the "wire".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import NEED_DATA, Event

EHLO_ALL = (
    b"250-mx.example.org greets you\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 1000000\r\n"
    b"250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n"
    b"250-DSN\r\n"
    b"250-CHUNKING\r\n"
    b"250-BINARYMIME\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-STARTTLS\r\n"
    b"250-AUTH PLAIN LOGIN\r\n"
    b"250-REQUIRETLS\r\n"
    b"250-DELIVERBY 60\r\n"
    b"250-MT-PRIORITY MIXER\r\n"
    b"250 LIMITS RCPTMAX=3\r\n"
)
EHLO_PLAIN = b"250 mx.example.org\r\n"
EHLO_PIPELINING = b"250-mx.example.org\r\n250 PIPELINING\r\n"

MAX_EVENTS = 10_000


def make_conn(parser_cls: Any, **config: Any) -> ClientConnection:
    """A connection using the parser twin ``parser_cls``."""
    return ClientConnection(ClientConfig(parser_factory=parser_cls, **config))


def drain(conn: ClientConnection) -> list[Event]:
    """Every event available now (bounded: a runaway engine fails the test)."""
    events: list[Event] = []
    for _ in range(MAX_EVENTS):
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        assert isinstance(event, Event)
        events.append(event)
        if type(event).__name__ == "ConnectionClosed":
            return events
    raise AssertionError("next_event never returned NEED_DATA")


def feed(conn: ClientConnection, data: bytes) -> list[Event]:
    """``receive_data(data)`` then drain."""
    conn.receive_data(data)
    return drain(conn)


def names(events: Iterable[Event]) -> list[str]:
    return [type(event).__name__ for event in events]


def greeted(parser_cls: Any, ehlo_reply: bytes = EHLO_ALL, **config: Any) -> ClientConnection:
    """A connection past the greeting and an accepted EHLO (LHLO with ``lmtp=True``)."""
    from smtpproto.client_engine.events import Ehlo, Lhlo

    conn = make_conn(parser_cls, **config)
    assert names(feed(conn, b"220 mx.example.org ESMTP\r\n")) == ["Greeting"]
    hello = Lhlo(hostname="client.example") if config.get("lmtp") else Ehlo(hostname="c.example")
    conn.send(hello)
    assert names(feed(conn, ehlo_reply))[0] == "EhloAccepted"
    return conn


Reply = bytes
Responder = Callable[[bytes], Reply]


class ScriptedServer:
    """Answers the client's bytes. ``script`` maps a verb (``b"MAIL"``, ``b"."`` for the
    end of DATA, ``b"BDAT"``) to a list of replies used in order, then the default."""

    DEFAULTS: ClassVar[dict[bytes, bytes]] = {
        b"EHLO": EHLO_PIPELINING,
        b"LHLO": EHLO_PIPELINING,
        b"HELO": b"250 mx.example.org\r\n",
        b"MAIL": b"250 2.1.0 ok\r\n",
        b"RCPT": b"250 2.1.5 ok\r\n",
        b"DATA": b"354 go ahead\r\n",
        b".": b"250 2.0.0 queued\r\n",
        b"BDAT": b"250 2.0.0 chunk ok\r\n",
        b"RSET": b"250 2.0.0 ok\r\n",
        b"NOOP": b"250 2.0.0 ok\r\n",
        b"QUIT": b"221 2.0.0 bye\r\n",
        b"STARTTLS": b"220 2.0.0 ready\r\n",
    }

    def __init__(self, script: dict[bytes, list[bytes]] | None = None) -> None:
        self.script = {key: list(value) for key, value in (script or {}).items()}
        self.buffer = b""
        self.in_data = False
        self.bdat_left = 0
        self.bdat_last = False
        self.bdat_reply: bytes | None = None
        self.content = b""
        self.messages: list[bytes] = []
        self.lines: list[bytes] = []

    def reply_for(self, verb: bytes) -> bytes:
        queue = self.script.get(verb)
        if queue:
            return queue.pop(0)
        return self.DEFAULTS.get(verb, b"502 5.5.1 unknown\r\n")

    def receive(self, data: bytes) -> bytes:
        """Consume client bytes; return the replies they produce."""
        self.buffer += data
        out = b""
        while True:
            if self.bdat_reply is not None:  # inside a BDAT chunk
                take = self.buffer[: self.bdat_left]
                self.content += take
                self.buffer = self.buffer[len(take) :]
                self.bdat_left -= len(take)
                if self.bdat_left:
                    return out
                if self.bdat_last:
                    self.messages.append(self.content)
                    self.content = b""
                out += self.bdat_reply
                self.bdat_reply = None
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return out
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            if self.in_data:
                if line == b".":
                    self.in_data = False
                    self.messages.append(self.content)
                    self.content = b""
                    out += self.reply_for(b".")
                else:
                    self.content += (line[1:] if line.startswith(b".") else line) + b"\r\n"
                continue
            self.lines.append(line)
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            reply = self.reply_for(verb)
            if verb == b"DATA" and reply.startswith(b"354"):
                self.in_data = True
            if verb == b"BDAT":
                parts = line.split()
                self.bdat_left = int(parts[1])
                self.bdat_last = parts[-1].upper() == b"LAST"
                self.bdat_reply = reply
                continue
            out += reply


def run(conn: ClientConnection, server: ScriptedServer, wire: bytes) -> list[Event]:
    """Deliver ``wire`` to ``server`` and its replies back to ``conn``; drain."""
    replies = server.receive(wire)
    return feed(conn, replies) if replies else drain(conn)
