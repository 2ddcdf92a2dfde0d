"""Test support for the server role: drive a ServerConnection with a reply policy."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from smtpproto.client_engine.events import NEED_DATA
from smtpproto.server_engine.config import ServerConfig
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import (
    PAUSED,
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    ClientDisconnected,
    CommandRejected,
    DataRequested,
    EhloReceived,
    HeloReceived,
    MessageComplete,
    QuitReceived,
    ServerEvent,
    StartTLSRequested,
    UnknownCommand,
)
from smtpproto.server_engine.replies import (
    auth_cancelled,
    auth_challenge,
    closing,
    ehlo_reply,
    greeting,
    helo_reply,
    not_recognized,
    ok,
    ready_to_start_tls,
    start_mail_input,
)
from smtpproto.wire.reply import Reply

DEFAULT_EXTENSIONS = (
    "PIPELINING",
    "SIZE 10000",
    "8BITMIME",
    "SMTPUTF8",
    "DSN",
    "CHUNKING",
    "BINARYMIME",
    "STARTTLS",
    "AUTH PLAIN LOGIN",
    "ENHANCEDSTATUSCODES",
)

Policy = Callable[[ServerEvent], "Reply | list[Reply] | None"]


def default_reply(event: ServerEvent, extensions: Iterable[str], recipients: int) -> list[Reply]:
    """What a permissive server answers to ``event``."""
    if isinstance(event, EhloReceived):
        return [ehlo_reply("mx.test", extensions)]
    if isinstance(event, HeloReceived):
        return [helo_reply("mx.test")]
    if isinstance(event, DataRequested):
        return [start_mail_input()]
    if isinstance(event, CommandRejected):
        return [event.reply] * recipients
    if isinstance(event, UnknownCommand):
        return [not_recognized()]
    if isinstance(event, StartTLSRequested):
        return [ready_to_start_tls()]
    if isinstance(event, QuitReceived):
        return [closing("mx.test")]
    if isinstance(event, (AuthRequested, AuthResponse)):
        return [auth_challenge(b"")]
    if isinstance(event, AuthCancelled):
        return [auth_cancelled()]
    if isinstance(event, MessageComplete):
        return [ok()] * recipients
    return [ok()]


class Session:
    """A greeted ServerConnection plus everything it emitted and wrote."""

    def __init__(
        self,
        *,
        extensions: Iterable[str] = DEFAULT_EXTENSIONS,
        lmtp: bool = False,
        config: ServerConfig | None = None,
        policy: Policy | None = None,
        greet: bool = True,
        tls_active: bool = False,
    ) -> None:
        self.conn = ServerConnection(lmtp=lmtp, config=config, tls_active=tls_active)
        self.extensions = tuple(extensions)
        self.policy = policy
        self.events: list[ServerEvent] = []
        self.out = bytearray()
        if greet:
            self.out += self.conn.send(greeting("mx.test"))

    def reply_for(self, event: ServerEvent) -> list[Reply]:
        if self.policy is not None:
            chosen = self.policy(event)
            if chosen is not None:
                return chosen if isinstance(chosen, list) else [chosen]
        return default_reply(event, self.extensions, self.conn.replies_due)

    def feed(self, *chunks: bytes) -> list[ServerEvent]:
        """Feed each chunk and pump after each; return the new events."""
        start = len(self.events)
        for chunk in chunks:
            self.conn.receive_data(chunk)
            self.pump()
        return self.events[start:]

    def pump(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            assert isinstance(event, ServerEvent)
            self.events.append(event)
            if isinstance(event, ClientDisconnected):
                return
            if event.expects_reply:
                for reply in self.reply_for(event):
                    self.out += self.conn.send(reply)
        raise AssertionError("pump did not settle")

    def codes(self) -> list[int]:
        """The reply codes written so far (last line of each reply), greeting included."""
        return [int(m[1]) for m in re.finditer(rb"^(\d{3}) ", bytes(self.out), re.M)]

    def content(self) -> bytes:
        from smtpproto.server_engine.events import ContentReceived

        return b"".join(e.data for e in self.events if isinstance(e, ContentReceived))

    def of(self, cls: type[ServerEvent]) -> list[ServerEvent]:
        return [e for e in self.events if isinstance(e, cls)]
