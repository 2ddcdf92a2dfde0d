"""A hypothesis state machine drives ServerConnection with valid and out-of-sequence
commands and random accept/refuse replies, against a small model of RFC 5321 §4.1.4."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from smtpproto.client_engine.events import NEED_DATA
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import (
    BdatStarted,
    ChunkComplete,
    CommandRejected,
    ContentReceived,
    DataRequested,
    EhloReceived,
    MailReceived,
    MessageComplete,
    NoopReceived,
    RcptReceived,
    ResetReceived,
    ServerEvent,
)
from smtpproto.server_engine.replies import (
    ehlo_reply,
    greeting,
    mailbox_unavailable,
    ok,
    start_mail_input,
    transaction_failed,
)
from smtpproto.server_engine.states import ServerState
from smtpproto.wire.reply import Reply

EXTENSIONS = ["PIPELINING", "CHUNKING", "8BITMIME"]


class ServerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.conn = ServerConnection()
        self.conn.send(greeting("mx.test"))
        self.greeted = False
        self.in_mail = False
        self.recipients = 0
        self.bdat = False
        self.messages = 0

    # -- helpers -------------------------------------------------------------------------

    def events(self, data: bytes) -> list[ServerEvent]:
        self.conn.receive_data(data)
        out: list[ServerEvent] = []
        for _ in range(100):
            event = self.conn.next_event()
            if not isinstance(event, ServerEvent):
                return out
            out.append(event)
            if event.expects_reply:
                return out
        raise AssertionError("no reply point reached")

    def one(self, data: bytes) -> ServerEvent:
        (event,) = self.events(data)
        return event

    def answer(self, reply: Reply) -> None:
        self.conn.send(reply)
        assert self.conn.replies_due == 0

    def refused_503(self, event: ServerEvent) -> None:
        assert isinstance(event, CommandRejected) and event.reply.code == 503, event
        self.answer(event.reply)

    # -- rules -----------------------------------------------------------------------

    @rule(accept=st.booleans())
    def ehlo(self, accept: bool) -> None:
        event = self.one(b"EHLO client.test\r\n")
        assert isinstance(event, EhloReceived)
        if accept:
            self.answer(ehlo_reply("mx.test", EXTENSIONS))
            self.greeted, self.in_mail, self.recipients, self.bdat = True, False, 0, False
        else:
            self.answer(transaction_failed())

    @rule(accept=st.booleans())
    def mail(self, accept: bool) -> None:
        event = self.one(b"MAIL FROM:<a@x.test>\r\n")
        if not self.greeted or self.in_mail:
            return self.refused_503(event)
        assert isinstance(event, MailReceived)
        self.answer(ok() if accept else mailbox_unavailable())
        self.in_mail = accept

    @rule(accept=st.booleans())
    def rcpt(self, accept: bool) -> None:
        event = self.one(b"RCPT TO:<b@y.test>\r\n")
        if not self.in_mail:
            return self.refused_503(event)
        assert isinstance(event, RcptReceived)
        self.answer(ok() if accept else mailbox_unavailable())
        self.recipients += accept

    @rule(go=st.booleans(), accept=st.booleans(), body=st.binary(max_size=40))
    def data(self, go: bool, accept: bool, body: bytes) -> None:
        event = self.one(b"DATA\r\n")
        if not self.recipients or self.bdat:
            return self.refused_503(event)
        assert isinstance(event, DataRequested)
        if not go:
            return self.answer(transaction_failed())
        self.answer(start_mail_input())
        stuffed = body.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        events = self.events(stuffed + b"\r\n.\r\n")
        *content, end = events
        assert all(isinstance(e, ContentReceived) for e in content)
        assert isinstance(end, MessageComplete)
        self.answer(ok() if accept else transaction_failed())
        self.in_mail, self.recipients, self.messages = False, 0, self.messages + 1

    @rule(last=st.booleans(), accept=st.booleans(), chunk=st.binary(max_size=30))
    def bdat_chunk(self, last: bool, accept: bool, chunk: bytes) -> None:
        header = b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"")
        events = self.events(header + chunk)
        if not self.recipients:
            assert not any(isinstance(e, ContentReceived) for e in events)
            return self.refused_503(events[-1])
        assert isinstance(events[0], BdatStarted)
        end = events[-1]
        assert isinstance(end, MessageComplete if last else ChunkComplete)
        self.answer(ok() if accept else transaction_failed())
        if last or not accept:
            self.in_mail, self.recipients, self.bdat = False, 0, False
        else:
            self.bdat = True

    @rule()
    def rset(self) -> None:
        assert isinstance(self.one(b"RSET\r\n"), ResetReceived)
        self.answer(ok())
        self.in_mail, self.recipients, self.bdat = False, 0, False

    @rule()
    def noop(self) -> None:
        assert isinstance(self.one(b"NOOP\r\n"), NoopReceived)
        self.answer(ok())

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def state_matches_model(self) -> None:
        expected = (
            ServerState.CONNECTED
            if not self.greeted
            else ServerState.RCPT
            if self.recipients
            else ServerState.MAIL
            if self.in_mail
            else ServerState.READY
        )
        assert self.conn.state is expected
        assert len(self.conn.recipients) == self.recipients
        assert self.conn.next_event() is NEED_DATA


TestServerModel = ServerModel.TestCase
TestServerModel.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
