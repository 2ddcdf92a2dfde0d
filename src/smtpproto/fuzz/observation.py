"""What a run of a transcript observed: per connection, the bytes read after each client
event and how the connection ended; plus whether the server was alive afterwards.

These are plain values (no I/O), so the oracles (``fuzz.oracles``) are tested in memory.
``parse`` turns a connection's bytes into replies with the project's strict reply parser
(RFC 5321 §4.2), the first oracle we get for free.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..wire.errors import RemoteProtocolError
from ..wire.reply import Reply
from ..wire.twins import ReplyParser
from .transcript import Event

__all__ = [
    "ConnResult",
    "Liveness",
    "Observation",
    "ParsedReply",
    "Step",
    "parse",
    "reply_bytes",
    "stalled_reply",
    "tls_records_length",
]

#: How a connection ended. ``closed``: we closed it; ``eof``/``reset``: the server did;
#: ``refused``: it never opened; ``tls-failed``: a handshake failed; ``timeout``: the
#: runner gave up on a read that must complete (a TLS handshake).
END_STATES = ("closed", "eof", "reset", "refused", "tls-failed", "timeout")

# Generous limits: a reply longer than RFC 5321's 512 octets is impolite, not a flaw we
# report; a grammar violation is.
_MAX_LINE = 1 << 20
_MAX_LINES = 100_000


@dataclass
class Step:
    """One client event and what the server sent after it (until the next client event).

    ``event`` is ``None`` for the banner read right after the connect. ``timed_out`` says
    the read stopped on its deadline before the replies it waited for had all arrived.
    """

    event: Event | None
    received: bytes = b""
    elapsed: float = 0.0
    timed_out: bool = False


@dataclass
class ConnResult:
    """One connection: its steps in order and how it ended (after ``ended_after``, the
    position in ``steps`` of the last step before the peer closed; -1 when we closed)."""

    steps: list[Step] = field(default_factory=list)
    end: str = "closed"
    ended_after: int = -1
    detail: str = ""

    @property
    def peer_closed(self) -> bool:
        return self.end in ("eof", "reset")


@dataclass(frozen=True)
class ParsedReply:
    """A reply and the position of the step during which it was received."""

    step: int
    reply: Reply


def tls_records_length(data: bytes) -> int:
    """How many leading octets of ``data`` are whole TLS records (RFC 8446 §5.1: content
    type 20-23, version 3.x, a two-octet length). No SMTP reply starts so (a digit)."""
    at = 0
    while len(data) - at >= 5 and 20 <= data[at] <= 23 and data[at + 1] == 3:
        end = at + 5 + int.from_bytes(data[at + 3 : at + 5], "big")
        if end > len(data):
            break
        at = end
    return at


def reply_bytes(conn: ConnResult) -> Iterator[bytes]:
    """Each step's received bytes as the reply parser must see them: the client goes on
    in cleartext right after its close_notify without waiting for the server's
    (FUZZ-TRANSCRIPT.md), so the server's alert record, when it comes later, is read in
    cleartext; it is left out here (it is kept in the recorded transcript)."""
    after_notify = False
    for step in conn.steps:
        data = step.received
        if step.event is not None and step.event.dir == "tls":
            after_notify = step.event.note == "close_notify"
        if after_notify and data:
            data = data[tls_records_length(data) :]
            after_notify = not data
        yield data


def parse(conn: ConnResult) -> tuple[list[ParsedReply], str | None]:
    """Every complete reply of the connection (banner first) and the first grammar error.

    One parser reads the whole connection, TLS or not, as the server's output is one
    stream of replies. Bytes after a grammar error are not parsed (the error is returned).
    """
    parser = ReplyParser(max_line_length=_MAX_LINE, max_lines=_MAX_LINES, max_reply_bytes=1 << 24)
    replies: list[ParsedReply] = []
    for position, received in enumerate(reply_bytes(conn)):
        if not received:
            continue
        try:
            got = parser.feed(received)
        except RemoteProtocolError as error:
            return replies, str(error)
        replies.extend(ParsedReply(position, reply) for reply in got)
        if parser.failed:
            try:
                parser.feed(b"")
            except RemoteProtocolError as error:
                return replies, str(error)
    return replies, None


def stalled_reply(conn: ConnResult) -> bytes | None:
    """The start of a reply the server left unfinished when a read ran into its
    deadline (e.g. a multiline reply whose last line still says ``250-``), else ``None``."""
    parser = ReplyParser(max_line_length=_MAX_LINE, max_lines=_MAX_LINES, max_reply_bytes=1 << 24)
    tail = b""
    for step, received in zip(conn.steps, reply_bytes(conn), strict=True):
        try:
            parser.feed(received)
        except RemoteProtocolError:
            return None
        tail = (tail + received)[-200:]
        if step.timed_out and parser.buffered > 0:
            return tail[-min(parser.buffered, 200) :]
    return None


@dataclass
class Liveness:
    """A fresh connection after the run: did a banner come, and which."""

    alive: bool
    banner: bytes = b""
    detail: str = ""


@dataclass
class Observation:
    """Everything one run saw; ``liveness`` is set when the runner checked it."""

    conns: list[ConnResult] = field(default_factory=list)
    liveness: Liveness | None = None
    seconds: float = 0.0
    stopped: str = ""  # why the run ended before its last event (a time limit), if it did
