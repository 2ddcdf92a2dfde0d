"""A Hypothesis ``RuleBasedStateMachine`` that drives a live SMTP server and checks it.

Usage (pytest)::

    from smtpproto.fuzz.statemachine import server_state_machine

    TestMyServer = server_state_machine("127.0.0.1", 2525).TestCase

Each rule is one client move (EHLO, MAIL, RCPT, DATA with a body, RSET, NOOP, a hostile
command, a pipelined batch, a new connection); after each, the machine checks the
invariants every correct server keeps (the rules of the fuzzer's oracles, judged step by
step as the machine goes, with the same strict reply parser):

- **grammar**: every reply passes the strict reply parser (RFC 5321 §4.2);
- **count**: exactly one reply per command, none unsolicited (RFC 5321 §4.2, RFC 2920
  §3.1); a ``421`` closing the channel is always allowed;
- **state**: RCPT outside a transaction, a nested MAIL and DATA without an accepted
  recipient are refused (RFC 5321 §3.3, §4.1.4); RSET and NOOP get 250 (§4.1.1.5,
  §4.1.1.9); a message ended with CRLF "." CRLF gets exactly one reply;
- **crash**: a connection dropped with replies due and no 421/221 is a failure when a
  fresh connection then gets no banner;
- **hang**: no reply within ``reply_timeout`` while a fresh connection answers NOOP.

A failure raises ``AssertionError`` whose message holds the connection's transcript in
the ``FUZZ-TRANSCRIPT.md`` format, so Hypothesis's shrunk example comes with a file
``smtpproto replay`` can act again. Needs ``hypothesis`` (the ``smtpproto[fuzz]`` extra).
"""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import ssl
from typing import NoReturn

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from ..wire.errors import RemoteProtocolError
from ..wire.reply import Reply
from ..wire.twins import ReplyParser
from . import strategies as smtp
from .transcript import Transcript, connect, recv, send, starttls

__all__ = ["SMTPServerMachine", "server_state_machine"]

_CHUNK = 65536


class _Dropped(Exception):
    """The server closed the connection (``closing`` says it sent 421/221 first)."""

    def __init__(self, closing: bool) -> None:
        super().__init__("connection closed by the server")
        self.closing = closing


class SMTPServerMachine(RuleBasedStateMachine):
    """Drive the server at ``host``:``port``; subclass via ``server_state_machine``."""

    host = "127.0.0.1"
    port = 25
    use_tls = False
    auth: tuple[str, str] | None = None
    reply_timeout = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.sock: socket.socket | None = None
        self.transcript = Transcript()
        self.parser = ReplyParser()
        self._open()

    # -- transport -----------------------------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        raise AssertionError(f"{message}\n--- transcript (JSONL) ---\n{self.transcript.dumps()}")

    def _open(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.transcript.events.append(connect())
        self.parser = ReplyParser()
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.reply_timeout)
        except OSError as error:
            self.fail(f"cannot connect (did an earlier example crash the server?): {error}")
        self.greeted = False
        self.in_mail = False
        self.rcpts = 0
        self.pipelining = False
        self._read(1, "the banner")
        if self.use_tls:
            self._ehlo()
            (reply,) = self.exchange(b"STARTTLS\r\n", 1)
            if reply.code != 220:
                self.fail(f"STARTTLS refused: {reply.code}")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(self.sock)
            self.transcript.events.append(starttls())
        self._ehlo()
        if self.auth is not None:
            token = base64.b64encode(f"\0{self.auth[0]}\0{self.auth[1]}".encode()).decode()
            (reply,) = self.exchange(f"AUTH PLAIN {token}\r\n".encode(), 1)
            if reply.code != 235:
                self.fail(f"AUTH with the given credentials failed: {reply.code}")

    def _ehlo(self) -> None:
        (reply,) = self.exchange(b"EHLO fuzz.smtpproto.test\r\n", 1)
        self.greeted = reply.code == 250
        self.pipelining = any(line.upper().startswith(b"PIPELINING") for line in reply.raw_lines)

    def _read(self, count: int, what: str, most: int | None = None) -> list[Reply]:
        """Read until ``count`` replies arrived (``most`` allowed, default ``count``);
        handle EOF, hangs and grammar errors."""
        assert self.sock is not None
        replies: list[Reply] = []
        while len(replies) < count:
            try:
                data = self.sock.recv(_CHUNK)
            except TimeoutError:
                self._hang(what)
            except (ConnectionError, ssl.SSLError, OSError):
                data = b""
            if data:
                self.transcript.events.append(recv(data))
            try:
                replies += self.parser.feed(data) if data else []
            except RemoteProtocolError as error:
                self.fail(f"invalid reply syntax after {what}: {error}")
            if not data:
                closing = any(r.code in (421, 221) for r in replies)
                if not closing:
                    self._check_alive(what)
                raise _Dropped(closing)
            if any(r.code == 421 for r in replies):
                raise _Dropped(True)
        if len(replies) > (most or count):
            self.fail(f"{len(replies)} replies to {what}, {count} expected")
        return replies

    def _check_alive(self, what: str) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.reply_timeout) as s:
                banner = s.recv(512)
        except OSError as error:
            self.fail(f"server crash after {what}: dropped without 421, then {error}")
        if not banner:
            self.fail(f"server crash after {what}: dropped without 421, then no banner")

    def _hang(self, what: str) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.reply_timeout) as s:
                s.recv(512)
                s.sendall(b"NOOP\r\n")
                control = s.recv(512)
        except OSError:
            control = b""
        state = "while a fresh connection answers NOOP" if control else "and NOOP hangs too"
        self.fail(f"hang: no reply to {what} within {self.reply_timeout} s, {state}")

    def _poll(self) -> bytes:
        """Whatever the server sent unasked, without waiting (``b""``: nothing)."""
        assert self.sock is not None
        if not select.select([self.sock], [], [], 0)[0]:
            return b""
        self.sock.settimeout(0.0)
        try:
            return self.sock.recv(_CHUNK)  # a TLS record without data (a ticket) raises
        except (ssl.SSLWantReadError, BlockingIOError):
            return b""
        except OSError:
            return b""  # the read after the write sees the end of the connection
        finally:
            self.sock.settimeout(self.reply_timeout)

    def exchange(self, data: bytes, count: int, most: int | None = None) -> list[Reply]:
        """Send one write, expecting ``count`` replies; unsolicited bytes fail first."""
        assert self.sock is not None
        extra = self._poll() if self.parser.buffered == 0 else b""
        if extra:
            self.transcript.events.append(recv(extra))
            if extra.startswith(b"421"):
                raise _Dropped(True)  # closing the channel is always allowed
            self.fail(f"unsolicited data before {data[:40]!r}: {extra[:80]!r}")
        self.transcript.events.append(send(data, expect=count))
        with contextlib.suppress(OSError):  # the read below sees the end of the connection
            self.sock.sendall(data)
        return self._read(count, repr(data[:60]), most)

    def step(self, data: bytes, count: int = 1) -> list[Reply] | None:
        """``exchange``; a connection the server closed is reopened (``None``)."""
        try:
            return self.exchange(data, count)
        except _Dropped:
            self._open()
            return None

    def teardown(self) -> None:
        if self.sock is not None:
            self.sock.close()

    # -- rules ---------------------------------------------------------------------------

    @rule(domain=smtp.domains())
    def ehlo(self, domain: str) -> None:
        got = self.step(f"EHLO {domain}\r\n".encode())
        if got and got[0].code == 250:
            self.greeted, self.in_mail, self.rcpts = True, False, 0

    @rule(path=smtp.reverse_paths())
    def mail(self, path: str) -> None:
        in_mail = self.in_mail
        got = self.step(f"MAIL FROM:{path}\r\n".encode())
        if got and got[0].code // 100 == 2:
            if in_mail:
                self.fail("a nested MAIL was accepted (RFC 5321 §3.3: 503)")
            self.in_mail, self.rcpts = True, 0

    @rule(path=smtp.paths())
    def rcpt(self, path: str) -> None:
        in_mail = self.in_mail
        got = self.step(f"RCPT TO:{path}\r\n".encode())
        if got and got[0].code // 100 == 2:
            if not in_mail:
                self.fail("RCPT was accepted outside a mail transaction (RFC 5321 §3.3: 503)")
            self.rcpts += 1

    @rule(body=smtp.data_bodies())
    def data(self, body: bytes) -> None:
        rcpts = self.rcpts
        got = self.step(b"DATA\r\n")
        if got is None or got[0].code != 354:
            return
        if rcpts == 0:
            self.fail("DATA was accepted without an accepted recipient (RFC 5321 §3.3)")
        self.step(body)
        self.in_mail, self.rcpts = False, 0

    @rule()
    def rset(self) -> None:
        got = self.step(b"RSET\r\n")
        if got and got[0].code != 250:
            self.fail(f"RSET got {got[0].code}, 250 required (RFC 5321 §4.1.1.5)")
        self.in_mail, self.rcpts = False, 0

    @rule()
    def noop(self) -> None:
        got = self.step(b"NOOP\r\n")
        if got and got[0].code != 250:
            self.fail(f"NOOP got {got[0].code}, 250 required (RFC 5321 §4.1.1.9)")

    @rule(command=smtp.hostile_commands().filter(lambda c: c.count(b"\n") == 1))
    def hostile(self, command: bytes) -> None:
        if not command.endswith(b"\r\n") or b"\r" in command[:-2]:
            command += b"\r\n"  # the server may wait for a real CRLF: give it one
            count = 2 if b"\n" in command[:-2] else 1
        else:
            count = 1
        if count == 1:
            self.step(command)
        else:
            self._lenient(command)
        self.step(b"RSET\r\n")
        self.in_mail, self.rcpts = False, 0

    def _lenient(self, command: bytes) -> None:
        """A write with a bare line end: one or two replies are both correct."""
        try:
            if len(self.exchange(command, 1, most=2)) == 2:
                return
        except _Dropped:
            self._open()
            return
        assert self.sock is not None
        ready = select.select([self.sock], [], [], min(self.reply_timeout, 0.2))[0]
        if ready or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            try:
                self._read(1, f"the second line of {command[:40]!r}")
            except _Dropped:
                self._open()

    @rule(count=st.integers(1, 8), path=smtp.paths())
    def pipelined(self, count: int, path: str) -> None:
        if not self.pipelining or not self.greeted or self.in_mail:
            return
        batch = b"MAIL FROM:<>\r\n" + f"RCPT TO:{path}\r\n".encode() * count + b"RSET\r\n"
        self.step(batch, count + 2)
        self.in_mail, self.rcpts = False, 0

    @rule()
    def reconnect(self) -> None:
        self._open()


def server_state_machine(
    host: str,
    port: int,
    *,
    tls: bool = False,
    auth: tuple[str, str] | None = None,
    reply_timeout: float = 10.0,
) -> type[SMTPServerMachine]:
    """A ``SMTPServerMachine`` subclass bound to ``host``:``port``; use its ``TestCase``.

    ``tls``: STARTTLS (no certificate check) on every connection; ``auth``: AUTH PLAIN
    with these credentials after it.
    """
    attributes = {
        "host": host,
        "port": port,
        "use_tls": tls,
        "auth": auth,
        "reply_timeout": reply_timeout,
    }
    return type("BoundSMTPServerMachine", (SMTPServerMachine,), attributes)
