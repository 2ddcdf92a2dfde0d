"""Stateful test: random commands against a model server with random replies and chunking.

The model server (``ScriptedServer`` with a random reply policy) answers every command
line with a reply drawn from valid replies for that verb, sometimes an invalid one
(broken grammar, bare LF, an extra unsolicited reply) or an early EOF, and its bytes
reach the engine in random chunks. Invariants checked after every step:

* only ``ProtocolError`` subclasses ever escape the engine, and ERROR is sticky; a
  ``LocalProtocolError`` that leaves the connection out of ERROR (a command refused
  before any byte of it existed, docs/design.md §2) changed neither the state nor the
  commands outstanding;
* the wire never carries a bare CR or LF (content is normalised, commands validated);
* what was sent is consistent with what was received: content only after a 354 that
  the engine reported as ``ReadyForContent``; nothing between STARTTLS and
  ``tls_established``; MAIL only after an accepted hello; when every reply the server
  owes has been delivered and processed, the engine awaits nothing.
"""

from __future__ import annotations

import random
import re
from typing import Any

import hypothesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from conftest_datacodec import twins
from engine_helpers import ScriptedServer
from smtpproto.client_engine.config import ClientConfig, TLSPolicy
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    NEED_DATA,
    Auth,
    AuthContinue,
    Bdat,
    Command,
    ConnectionClosed,
    Content,
    Data,
    Ehlo,
    EhloAccepted,
    EndOfContent,
    Helo,
    HeloAccepted,
    Mail,
    Noop,
    Quit,
    Rcpt,
    ReadyForContent,
    Rset,
    StartTLS,
    TLSReady,
)
from smtpproto.client_engine.states import AFTER_CONTENT_END, ALLOWED, ClientState
from smtpproto.sasl import Plain
from smtpproto.wire.errors import LocalProtocolError, ProtocolError
from smtpproto.wire.twins import CReplyParser, PyReplyParser

EHLO_REPLIES = [
    b"250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n250-STARTTLS\r\n"
    b"250 AUTH PLAIN\r\n",
    b"250-mx\r\n250 PIPELINING\r\n",
    b"250 mx\r\n",
    b"502 no EHLO\r\n",
    b"421 closing\r\n",
]
VALID: dict[bytes, list[bytes]] = {
    b"GREETING": [b"220 mx\r\n", b"220-mx\r\n220 hello\r\n", b"554 no\r\n", b"421 busy\r\n"],
    b"EHLO": EHLO_REPLIES,
    b"HELO": [b"250 mx\r\n", b"501 bad\r\n"],
    b"MAIL": [b"250 ok\r\n", b"550 no\r\n", b"451 later\r\n"],
    b"RCPT": [b"250 ok\r\n", b"251 fwd\r\n", b"550 no\r\n", b"452 full\r\n"],
    b"DATA": [b"354 go\r\n", b"554 no\r\n", b"503 order\r\n"],
    b".": [b"250 queued\r\n", b"554 rejected\r\n", b"451 later\r\n"],
    b"BDAT": [b"250 ok\r\n", b"552 big\r\n"],
    b"RSET": [b"250 ok\r\n"],
    b"NOOP": [b"250 ok\r\n", b"250-multi\r\n250 line\r\n"],
    b"QUIT": [b"221 bye\r\n"],
    b"STARTTLS": [b"220 go\r\n", b"454 no tls\r\n"],
    b"AUTH": [b"235 ok\r\n", b"535 bad\r\n", b"334 \r\n", b"334 bm9uY2U=\r\n"],
    b"*": [b"235 ok\r\n", b"535 bad\r\n", b"501 cancelled\r\n", b"334 \r\n"],
}
INVALID = [b"2x0 broken\r\n", b"250 bare lf\n", b"250 ok\r\n250 unsolicited\r\n", b"250-unfinished"]
_ENDERS = {"EHLO", "HELO", "LHLO", "STARTTLS", "AUTH", "AUTHCONTINUE", "DATA"}
_ENDERS |= {"VRFY", "EXPN", "HELP", "NOOP", "QUIT"}
_AFTER_CONTENT_END = {verb.value for verb in AFTER_CONTENT_END}
_VERB_NAMES = {"EndOfContent": "END_OF_CONTENT", "AuthContinue": "AUTH_CONTINUE"}
BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class RandomServer(ScriptedServer):
    def __init__(self, rnd: random.Random, nastiness: float) -> None:
        super().__init__()
        self.rnd = rnd
        self.nastiness = nastiness

    def reply_for(self, verb: bytes) -> bytes:
        if self.rnd.random() < self.nastiness:
            return self.rnd.choice(INVALID)
        choices = VALID.get(verb, VALID[b"*"])
        if self.rnd.random() < 0.85:  # mostly the favourable reply, so sessions get deep
            return choices[0]
        return self.rnd.choice(choices)


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.conn: ClientConnection | None = None

    @initialize(
        seed=st.integers(0, 2**32 - 1),
        twin=st.sampled_from(twins(PyReplyParser, CReplyParser)),  # a missing build fails
        nasty=st.sampled_from([0.0, 0.0, 0.01, 0.1]),
    )
    def start(self, seed: int, twin: Any, nasty: float) -> None:
        self.rnd = random.Random(seed)
        self.server = RandomServer(self.rnd, nasty)
        self.conn = ClientConnection(
            ClientConfig(parser_factory=twin, allow_cleartext_auth=True, max_auth_rounds=3)
        )
        self.outbox = self.server.reply_for(b"GREETING")  # server bytes not yet delivered
        self.failed = False
        self.closed = False
        self.content_ok = False  # the last 354 was reported as ReadyForContent
        self.hello_ok = False
        self.tls_pending = False
        self.wire = b""
        self.rcpts = 0
        self.deliver([self.rnd.randint(1, 5)], eof=False)  # the greeting

    # -- helpers ------------------------------------------------------------------------

    def _guard(self, action: Any) -> Any:
        assert self.conn is not None
        state, outstanding = self.conn.state, self.conn.outstanding
        try:
            return action()
        except LocalProtocolError:
            if self.conn.state is not ClientState.ERROR:  # refused before any byte existed
                assert (self.conn.state, self.conn.outstanding) == (state, outstanding)
                return None
            self.failed = True
            return None
        except ProtocolError:
            self.failed = True
            assert self.conn.state is ClientState.ERROR
            return None
        # any other exception type propagates and fails the test

    def _command(self, choice: int, text: bytes) -> Command:
        commands: list[Any] = [
            lambda: Ehlo(hostname="client.example"),
            lambda: Helo(hostname="client.example"),
            lambda: Mail(sender="a@example.org", body="8BITMIME" if choice % 2 else None),
            lambda: Rcpt(recipient=f"r{choice}@example.org"),
            lambda: Data(),
            lambda: Content(data=text),
            lambda: EndOfContent(),
            lambda: Bdat(data=text.replace(b"\r", b"").replace(b"\n", b""), last=choice % 2 == 0),
            lambda: Rset(),
            lambda: Noop(),
            lambda: Quit(),
            lambda: StartTLS(),
            lambda: Auth(mechanism=Plain("user", "pw")),
            lambda: AuthContinue(),
        ]
        return commands[choice % len(commands)]()  # type: ignore[no-any-return]

    def _plausible(self, command: Command, key: str, choice: int) -> bool:
        """What a careful caller would send now (public state only)."""
        conn = self.conn
        assert conn is not None
        caps = conn.capabilities
        outstanding = conn.outstanding
        if outstanding:
            last = outstanding[-1]
            if isinstance(last, EndOfContent) or (isinstance(last, Bdat) and last.last):
                # RFC 2920 §3.1: the content may open a group: the next MAIL may follow
                if key not in _AFTER_CONTENT_END:
                    return False
            elif type(last).__name__.upper() in _ENDERS:
                return False
        if key == "QUIT":
            return choice % 10 == 0
        if key == "AUTH":
            return caps is not None and "PLAIN" in caps.auth_mechanisms and not conn.authenticated
        if key == "STARTTLS":
            return caps is not None and caps.starttls and not conn.tls_active
        if key.startswith("BDAT"):
            return caps is not None and caps.chunking and self.rcpts > 0
        if key == "DATA":
            return self.rcpts > 0
        return not (key == "RCPT" and self.rcpts >= 3)

    # -- rules --------------------------------------------------------------------------

    @precondition(lambda self: self.conn is not None)
    @rule(
        choice=st.integers(0, 1000),
        text=st.binary(max_size=40),
        follow_state=st.integers(0, 29).map(lambda n: n > 0),
        deliver_cuts=st.none() | st.lists(st.integers(1, 30), max_size=4),
    )
    def send(
        self, choice: int, text: bytes, follow_state: bool, deliver_cuts: list[int] | None
    ) -> None:
        """Send one to four commands; then, usually, let the server's replies arrive."""
        for burst in range(1 + choice % 4):
            self._send(choice + burst * 7, text, follow_state)
        if deliver_cuts is not None and not self.closed:
            self.deliver(deliver_cuts, eof=False)

    @precondition(
        lambda self: (
            self.conn is not None
            and not self.failed
            and not self.closed
            and self.hello_ok
            and self.conn.state is ClientState.READY
            and not self.conn.awaiting_reply
            and self.conn.capabilities is not None
            and self.conn.capabilities.pipelining
        )
    )
    @rule(
        rcpts=st.integers(1, 3),
        text=st.binary(max_size=40),
        cuts=st.lists(st.integers(1, 30), max_size=4),
    )
    def two_transactions_content_opens_the_group(
        self, rcpts: int, text: bytes, cuts: list[int]
    ) -> None:
        """RFC 2920 §3.1: message 1's content and end go out with message 2's
        MAIL/RCPT.../DATA, before message 1's final reply."""
        for round_ in range(2):
            envelope: list[Command] = [Mail(sender=f"m{round_}@example.org")]
            envelope += [Rcpt(recipient=f"n{i}@example.org") for i in range(rcpts)]
            if not self._send_all([*envelope, Data()]):
                return
            self.deliver(cuts, eof=False)
            if self.failed or self.closed or not self.content_ok:
                return
            if not self._send_all([Content(data=text), EndOfContent()]):
                return
        self.deliver(cuts, eof=False)

    def _send_all(self, commands: list[Command]) -> bool:
        """Send ``commands`` as they are; False once the connection failed."""
        for command in commands:
            self._send(0, b"", False, explicit=command)
            if self.failed:
                return False
        return True

    def _send(
        self, choice: int, text: bytes, follow_state: bool, explicit: Command | None = None
    ) -> None:
        conn = self.conn
        assert conn is not None
        command = explicit if explicit is not None else self._command(choice, text)
        if follow_state and not self.failed:
            # mostly send what the state table allows, so sessions get deep
            caps = conn.capabilities
            if conn.awaiting_reply and (caps is None or not caps.pipelining):
                if not self.closed:
                    self.deliver([], eof=False)  # wait for the reply instead
                return
            allowed = {verb.value for verb in ALLOWED[conn.state]}
            candidates = []
            for offset in range(14):
                candidate = self._command(choice + offset, text)
                key = _VERB_NAMES.get(type(candidate).__name__, type(candidate).__name__.upper())
                if key == "BDAT" and getattr(candidate, "last", False):
                    key = "BDAT_LAST"
                if key in allowed and self._plausible(candidate, key, choice):
                    candidates.append(candidate)
            if candidates:
                command = candidates[choice % len(candidates)]
        was_state = conn.state
        wire = self._guard(lambda: conn.send(command))
        if wire is None:
            return
        assert not self.tls_pending, "bytes emitted between STARTTLS 220 and the handshake"
        if isinstance(command, (Content, EndOfContent)) and was_state is ClientState.CONTENT:
            assert self.content_ok, "content sent without a ReadyForContent"
        if isinstance(command, Mail):
            assert self.hello_ok, "MAIL sent before an accepted hello"
            self.rcpts = 0
        if isinstance(command, Rcpt):
            self.rcpts += 1
        if not isinstance(command, Bdat):
            assert BARE.search(wire) is None, wire
        self.wire += wire
        if isinstance(command, (EndOfContent, Ehlo, Helo, Rset, Quit)):
            self.content_ok = False
        self.outbox += self.server.receive(wire)

    @precondition(lambda self: self.conn is not None and not self.closed)
    @rule(cuts=st.lists(st.integers(1, 30), max_size=6), eof=st.booleans())
    def deliver(self, cuts: list[int], eof: bool) -> None:
        conn = self.conn
        assert conn is not None
        data, self.outbox = self.outbox, b""
        pieces = []
        for cut in cuts:
            pieces.append(data[:cut])
            data = data[cut:]
        pieces = [piece for piece in [*pieces, data] if piece]
        if eof and self.rnd.random() < 0.1:
            pieces.append(b"")  # the server closes the connection
        for piece in pieces:
            self._guard(lambda piece=piece: conn.receive_data(piece))
            if self.failed:
                return
            self._drain()
            if self.failed or self.closed:
                return
        settled = (
            not self.failed
            and self.server.nastiness == 0.0
            and not self.outbox
            and self.server.bdat_reply is None
            and not self.server.buffer
            and conn.state not in (ClientState.CLOSING, ClientState.TLS_HANDSHAKE)
        )
        if settled:
            # every reply the server owed was delivered and processed
            assert not conn.awaiting_reply, conn.outstanding

    def _drain(self) -> None:
        conn = self.conn
        assert conn is not None
        for _ in range(1000):
            event = self._guard(conn.next_event)
            if event is None or event is NEED_DATA:
                return
            hypothesis.event(type(event).__name__)
            if isinstance(event, ReadyForContent):
                self.content_ok = True
            if isinstance(event, (EhloAccepted, HeloAccepted)):
                self.hello_ok = True
            if isinstance(event, TLSReady):
                self.tls_pending = True
            if isinstance(event, ConnectionClosed):
                self.closed = True
                return
        raise AssertionError("engine produced events forever")

    @precondition(lambda self: self.conn is not None and self.tls_pending and not self.failed)
    @rule()
    def handshake(self) -> None:
        assert self.conn is not None
        self._guard(self.conn.tls_established)
        self.tls_pending = False
        self.hello_ok = False
        self.server = RandomServer(self.rnd, self.server.nastiness)

    @invariant()
    def error_is_sticky(self) -> None:
        conn = self.conn
        if conn is None or not self.failed:
            return
        assert conn.state is ClientState.ERROR
        for action in (lambda: conn.send(Noop()), conn.next_event):
            try:
                action()
            except ProtocolError:
                continue
            raise AssertionError("a call succeeded in the ERROR state")

    @invariant()
    def wire_has_no_bare_line_ends_outside_bdat(self) -> None:
        if self.conn is not None and b"BDAT" not in self.wire:
            assert BARE.search(self.wire) is None


EngineMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineStateful = EngineMachine.TestCase


def test_policy_enum_is_complete() -> None:
    """Every TLS policy constructs a connection (guards the machine's config)."""
    for policy in TLSPolicy:
        assert ClientConnection(ClientConfig(tls_policy=policy)).state is ClientState.GREETING
