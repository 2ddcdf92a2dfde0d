"""The built-in server's front end: its short paths for a read that is one plain command
line (``_Connection._plain_line``) or DATA content (``_Connection._content``) against
the general loop (``_Connection._events``).

The short paths are taken when the engine's ``receive_line`` made the event of a read,
or its ``receive_content`` took the read, and there is no transcript; with a
transcript every read takes the general loop. So one
server with a transcript and one without, fed the same reads, must write the same
octets, close or abort alike, store the same messages and leave the engine in the same
state, whatever the reads (plain lines alone, lines cut or pipelined, content, hostile
input, rules that refuse, disconnect or drop, a policy that fails). Driven in memory:
an ``asyncio.Transport`` that records what is written, no socket.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto.builtin_server import server as server_module
from smtpproto.builtin_server.backend import Response, Session
from smtpproto.builtin_server.rules import Disconnect, Drop, Respond, Rule
from smtpproto.server import SMTPServer
from smtpproto.server_engine.config import ServerConfig
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import MailReceived, RcptReceived, ServerEvent
from smtpproto.wire.reply import Reply


class MemoryTransport(asyncio.Transport):
    """What the front end writes and whether it closed; reads are fed by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 2525) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class TwoReplies(Session):
    """A policy fault: MAIL answered with two replies where one is due."""

    def respond(self, event: ServerEvent) -> Response:
        if isinstance(event, MailReceived):
            return Response((Reply(250, (b"ok",)), Reply(250, (b"again",))))
        return super().respond(event)


class Failing(Session):
    """A policy that raises on RCPT."""

    def rcpt(self, event: RcptReceived) -> Reply:
        raise RuntimeError("policy failed")


class Silent(Session):
    """A policy that answers MAIL with no reply at all (the engine stays PAUSED)."""

    def respond(self, event: ServerEvent) -> Response:
        if isinstance(event, MailReceived):
            return Response()
        return super().respond(event)


class WrongCode(Session):
    """A policy that answers RCPT with a code RCPT cannot have (354)."""

    def rcpt(self, event: RcptReceived) -> Reply:
        return Reply(354, (b"go ahead",))


class ClosingHook(Session):
    """A hook that answers RCPT with 421 (the engine closes; the response does not say
    so: the front end learns it from the engine, PAUSED in CLOSED)."""

    def rcpt(self, event: RcptReceived) -> Reply:
        return Reply(421, (b"4.3.2 going away",))


class OwnRespond(Session):
    """A ``respond`` of its own that answers as ``Session.respond`` does."""

    def respond(self, event: ServerEvent) -> Response:
        return super().respond(event)


POLICIES: dict[str, tuple[type[Session], tuple[Rule, ...]]] = {
    "plain": (Session, ()),
    "own respond": (OwnRespond, ()),
    "refuse mail": (Session, (Rule(stage="mail", action=Respond(550, "no")),)),
    "refuse second rcpt": (Session, (Rule(stage="rcpt", message=2, action=Respond(450, "later")),)),
    "disconnect at rcpt": (Session, (Rule(stage="rcpt", action=Disconnect()),)),
    "drop at data": (Session, (Rule(stage="data", action=Drop()),)),
    "disconnect at data_end": (Session, (Rule(stage="data_end", action=Disconnect()),)),
    "two replies": (TwoReplies, ()),
    "failing": (Failing, ()),
    "silent": (Silent, ()),
    "wrong code": (WrongCode, ()),
    "421 from a hook": (ClosingHook, ()),
}

ITEMS = [
    b"EHLO client.example\r\n",
    b"HELO client.example\r\n",
    b"MAIL FROM:<a@example.test>\r\n",
    b"MAIL FROM:<a@example.test> SIZE=100\r\n",
    b"mail from:<>\r\n",
    b"RCPT TO:<b@example.test>\r\n",
    b"RCPT TO:<c@example.test>\r\n",
    b"DATA\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"VRFY someone\r\n",
    b"BOGUS\r\n",
    b"AUTH PLAIN dGVzdA==\r\n",
    b"STARTTLS\r\n",
    b"BDAT 5 LAST\r\nhello",
    b"MAIL FROM:<a@example.test>\n",
    b"MAIL FROM:<a@exa\rmple.test>\r\n",
    b"RCPT TO:<b@example.test>\x00\r\n",
    b"NOOP " + b"x" * 600 + b"\r\n",
    b"Subject: hi\r\n\r\nbody line\r\n",
    b"..leading dot\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"\n.\n",
    b"\r.\r\n",
    b"X" * 1200 + b"\r\n",
]


def serve(
    reads: Sequence[bytes],
    *,
    transcript: bool,
    policy: str,
    forbid: bool,
    max_message_size: int = 1 << 20,
) -> tuple[object, ...]:
    """Feed ``reads`` one by one to a front end (stopping once it closed) and return
    everything observable: octets written, close/abort, engine state, messages."""

    async def run() -> tuple[object, ...]:
        session_class, rules = POLICIES[policy]
        lines: list[str] = []
        server = SMTPServer(
            starttls=False,
            transcript=lines.append if transcript else None,
            session_class=session_class,
            rules=rules,
            forbid_unauth_pipelining=forbid,
            max_message_size=max_message_size,
        )
        await server.start(listen=False)
        transport = MemoryTransport()
        protocol = server_module._Connection(server)
        protocol.connection_made(transport)
        buffer = server._receive_buffer
        for data in reads:
            if transport.closed:
                break
            buffer[: len(data)] = data
            protocol.buffer_updated(len(data))
        conn = protocol._conn
        observed = (
            # the queue id names the time and a per-process count: the same everywhere
            re.sub(rb"queued as \S+", b"queued as ID", b"".join(transport.written)),
            transport.closed,
            transport.aborted,
            conn.state,
            conn.error_count,
            conn.replies_due,
            [(m.sender, m.recipients, m.data) for m in server.messages],
            [type(error).__name__ for error in server.policy_errors],
        )
        protocol.connection_lost(None)
        await server.close()
        return observed

    return asyncio.run(run())


TRANSACTION = [
    b"EHLO client.example\r\n",
    b"MAIL FROM:<a@example.test>\r\n",
    b"RCPT TO:<b@example.test>\r\n",
    b"DATA\r\n",
    b"Subject: hi\r\n\r\nbody\r\n.\r\n",
    b"QUIT\r\n",
]


@st.composite
def read_sequences(draw: st.DrawFn) -> list[bytes]:
    """A session's items, each one read alone (the short path's case) or cut and
    joined with its neighbours at any octet (the general loop's)."""
    items = draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=14))
    if draw(st.booleans()):  # whole transactions, the drawn items among them
        prefix = TRANSACTION[:-1] * draw(st.integers(1, 3))
        at = draw(st.integers(0, len(prefix)))
        items = prefix[:at] + items + prefix[at:]
    if draw(st.booleans()):
        return items
    stream = b"".join(items)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=10)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) if a < b]


@settings(max_examples=150, deadline=None)
@given(
    reads=read_sequences(),
    policy=st.sampled_from(sorted(POLICIES)),
    forbid=st.booleans(),
    size=st.sampled_from([1 << 20, 30]),  # 30: SIZE refuses some messages at their end
)
def test_the_short_path_and_the_general_loop_behave_the_same(
    reads: list[bytes], policy: str, forbid: bool, size: int
) -> None:
    assert serve(
        reads, transcript=False, policy=policy, forbid=forbid, max_message_size=size
    ) == serve(reads, transcript=True, policy=policy, forbid=forbid, max_message_size=size)


def test_a_plain_transaction_takes_the_short_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAIL, RCPT and DATA read alone take ``_plain_line`` (not QUIT, which closes; not
    the content) and the replies are the general loop's, in order."""
    taken: list[str] = []
    original = server_module._Connection._plain_line

    def spy(self: server_module._Connection, event: ServerEvent) -> None:
        taken.append(type(event).__name__)
        original(self, event)

    monkeypatch.setattr(server_module._Connection, "_plain_line", spy)
    written, closed, *_ = serve(TRANSACTION, transcript=False, policy="plain", forbid=True)
    # the content's end (``_content``) is answered by ``_plain_line`` too
    assert taken == ["MailReceived", "RcptReceived", "DataRequested", "MessageComplete"]
    assert closed is True
    assert isinstance(written, bytes)
    codes = [line[:3] for line in written.split(b"\r\n") if line[3:4] == b" "]
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]
    taken.clear()
    assert serve(TRANSACTION, transcript=True, policy="plain", forbid=True)[0] == written
    assert taken == []  # a transcript takes the general loop for every read


@pytest.mark.parametrize(
    ("policy", "reads", "expected"),
    [
        # a rule's 421 closes at once: nothing more is read or written
        ("disconnect at rcpt", TRANSACTION[:3], (b"421", True)),
        # a dropped DATA: no reply, closed
        ("drop at data", TRANSACTION[:4], (b"250", True)),
        # two replies where one is due: a policy error, 421, closed
        ("two replies", TRANSACTION[:2], (b"421", True)),
        # no reply: nothing written for MAIL, the session waits (not closed)
        ("silent", TRANSACTION[:2], (b"250", False)),
        # a hook's 421: the engine is CLOSED, so the front end closes too
        ("421 from a hook", TRANSACTION[:3], (b"421", True)),
    ],
)
def test_the_short_path_hands_what_it_does_not_finish_to_the_general_loop(
    policy: str, reads: list[bytes], expected: tuple[bytes, bool]
) -> None:
    written, closed, *_ = serve(reads, transcript=False, policy=policy, forbid=True)
    assert isinstance(written, bytes)
    last = written.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
    assert (last[:3], closed) == expected
    assert serve(reads, transcript=True, policy=policy, forbid=True)[:2] == (written, closed)


@pytest.mark.parametrize(("policy", "fused"), [("plain", True), ("own respond", False)])
def test_content_read_alone_is_one_engine_step_unless_the_policy_responds_itself(
    monkeypatch: pytest.MonkeyPatch, policy: str, fused: bool
) -> None:
    """The content read takes ``receive_content`` (no ``receive_data``) when there is no
    transcript and the policy's ``respond`` is ``Session.respond`` (which answers
    content with nothing); a ``respond`` of its own may act on content, so the general
    loop gives it each ``ContentReceived``."""
    fed: list[bytes] = []
    original = ServerConnection.receive_data

    def spy(self: ServerConnection, data: bytes) -> None:
        fed.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(ServerConnection, "receive_data", spy)
    content = b"Subject: hi\r\n\r\n..body\r\n.\r\nRSET\r\n"
    reads = [*TRANSACTION[:4], content]
    observed = serve(reads, transcript=False, policy=policy, forbid=False)
    assert (content in fed) is not fused
    assert observed[6] == [("a@example.test", ("b@example.test",), b"Subject: hi\r\n\r\n.body\r\n")]
    fed.clear()
    assert observed == serve(reads, transcript=True, policy=policy, forbid=False)
    assert content in fed  # a transcript: the general loop


async def _one_read(server: SMTPServer, data: bytes) -> tuple[bytes, MemoryTransport]:
    """Feed ``data`` as one read to a new connection of ``server``; what was written."""
    await server.start(listen=False)
    transport = MemoryTransport()
    protocol = server_module._Connection(server)
    protocol.connection_made(transport)
    server._receive_buffer[: len(data)] = data
    protocol.buffer_updated(len(data))  # whatever happens, handled here: nothing escapes
    protocol.connection_lost(None)
    await server.close()
    return b"".join(transport.written), transport


@pytest.mark.parametrize("transcript", [False, True])
def test_a_read_the_engine_refuses_ends_the_session_with_421(transcript: bool) -> None:
    """A read past the engine's ``max_receive_buffer`` (a config smaller than the
    front end's read size: the engine refuses the chunk in ``receive_data`` and stays
    as it was, so no reply to a command can be sent) takes the front end's error
    handling: recorded, 421, closed."""

    async def run() -> tuple[bytes, MemoryTransport, list[Exception]]:
        server = SMTPServer(starttls=False, transcript=[].append if transcript else None)
        server.config = ServerConfig(max_receive_buffer=4096, max_pipelined_input=4096)
        written, transport = await _one_read(server, b"NOOP\r\n" * 1000)
        return written, transport, server.policy_errors

    written, transport, errors = asyncio.run(run())
    assert written.startswith(b"220 ")
    assert written.split(b"\r\n")[-2].startswith(b"421 ")
    assert b"250" not in written  # no NOOP of the refused read was answered
    assert transport.closed
    assert [type(error).__name__ for error in errors] == ["LocalProtocolError"]


@pytest.mark.parametrize("method", ["receive_line", "receive_data"])
def test_an_engine_failure_on_a_read_ends_the_session_with_421(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Whatever the engine raises for a read (here a bug, simulated) is the front end's
    to handle, as an error of a policy is: recorded, 421, closed; never raised into the
    event loop."""

    def broken(self: object, data: bytes) -> None:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(ServerConnection, method, broken)
    if method == "receive_data":  # the read is not a plain line alone: receive_data
        monkeypatch.setattr(ServerConnection, "receive_line", lambda self, data: None)

    async def run() -> tuple[bytes, MemoryTransport, list[Exception]]:
        server = SMTPServer(starttls=False)
        written, transport = await _one_read(server, b"NOOP\r\n")
        return written, transport, server.policy_errors

    written, transport, errors = asyncio.run(run())
    assert written.startswith(b"220 ")
    assert written.split(b"\r\n")[-2].startswith(b"421 ")
    assert transport.closed
    assert [str(error) for error in errors] == ["engine bug"]
