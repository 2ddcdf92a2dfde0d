"""``ClientConnection``: the sans-IO SMTP/ESMTP/LMTP client engine (h11-style).

Theory of operation
-------------------
Four verbs. ``receive_data(bytes)`` only queues the bytes (``b""`` marks EOF).
``next_event()`` feeds queued bytes to the reply parser one chunk at a time, matches
each complete reply with the oldest outstanding command (a FIFO of ``Pending``
entries, RFC 2920 §3.1), updates the state and returns the events that produced; it
returns ``NEED_DATA`` when nothing more can be decided. ``send(command)`` checks the
command against the state tables (``_state``), the advertised capabilities and the
pipelining rules, and returns the exact bytes to write, queueing the reply it expects.
``send_failed()`` records that the caller's write failed. Any ``ProtocolError`` puts the
connection in the sticky ERROR state.

STARTTLS is a hard boundary (RFC 3207 §4, docs/design.md §4 rule 4): when the 220 reply to
STARTTLS is handled, any reply after it, any octet the parser holds and any chunk not
yet parsed is a ``RemoteProtocolError``; in TLS_HANDSHAKE ``receive_data`` refuses data
until ``tls_established()``, which forgets the capabilities and requires a new EHLO.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from ..wire.datacodec import DataEncoder
from ..wire.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ..wire.reply import Reply
from ..wire.twins import ReplyParser
from .capabilities import Capabilities
from .config import ClientConfig, ReplyParserLike, TLSPolicy
from .events import (
    NEED_DATA,
    Auth,
    AuthContinue,
    Bdat,
    Command,
    ConnectionClosed,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Event,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    NeedData,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
    UnsafeRawBytes,
    Vrfy,
)
from .replies import FINAL_VERBS, ReplyHandling
from .states import AFTER_CONTENT_END, AFTER_SEND, ALLOWED, GROUP_ENDERS, ClientState, Verb
from .transaction import Pending, Transaction
from .writers import (
    bdat_header,
    write_auth,
    write_auth_response,
    write_mail,
    write_rcpt,
)

if TYPE_CHECKING:
    from ..sasl.mechanisms import ClientMechanism

__all__ = ["ClientConnection"]

S = ClientState
V = Verb

_VERBS: dict[type[Command], Verb] = {
    Ehlo: V.EHLO,
    Helo: V.HELO,
    Lhlo: V.LHLO,
    StartTLS: V.STARTTLS,
    Auth: V.AUTH,
    AuthContinue: V.AUTH_CONTINUE,
    Mail: V.MAIL,
    Rcpt: V.RCPT,
    Data: V.DATA,
    Content: V.CONTENT,
    EndOfContent: V.END_OF_CONTENT,
    Bdat: V.BDAT,
    Rset: V.RSET,
    Noop: V.NOOP,
    Vrfy: V.VRFY,
    Expn: V.EXPN,
    Help: V.HELP,
    Quit: V.QUIT,
    UnsafeRawBytes: V.RAW,
}
_FIXED_WIRE = {
    V.STARTTLS: b"STARTTLS\r\n",
    V.RSET: b"RSET\r\n",
    V.NOOP: b"NOOP\r\n",
    V.QUIT: b"QUIT\r\n",
}
# Plain-dict copies of the state tables: looked up on every send, and a dict lookup
# is cheaper than one through the read-only MappingProxyType views.
_ALLOWED = dict(ALLOWED)
_AFTER_SEND = dict(AFTER_SEND)
# Verbs that do not wait for the previous reply: they are not commands on their own.
_NOT_COMMANDS = frozenset({V.CONTENT, V.END_OF_CONTENT, V.AUTH_CONTINUE, V.RAW})


#: Secrets shorter than this are redacted only where the engine replaces whole lines.
_MIN_REDACTED_SECRET = 4


def _secret_pattern(secrets: tuple[bytes, ...]) -> re.Pattern[bytes] | None:
    """One alternation of the secrets worth hunting for, longest first."""
    hunted = sorted((s for s in secrets if len(s) >= _MIN_REDACTED_SECRET), key=len, reverse=True)
    if not hunted:
        return None
    return re.compile(b"|".join(re.escape(secret) for secret in hunted))


class ClientConnection(ReplyHandling):
    """One SMTP (or LMTP) client session, without I/O. See ``docs/engine.md``."""

    __slots__ = ("_closed", "_eof", "_error", "_secret_pattern", "_secrets", "_transcript")

    def __init__(self, config: ClientConfig | None = None) -> None:
        self._config = config = config if config is not None else ClientConfig()
        self._parser = self._new_parser()
        self._state = S.GREETING
        self._caps: Capabilities | None = None
        self._pipelining = False
        self._rcptmax: int | None = None
        self._tls_active = config.tls_policy is TLSPolicy.IMPLICIT
        self._pending: deque[Pending] = deque([Pending(None, None)])
        self._events: deque[Event] = deque()
        self._replies: deque[Reply] = deque()
        self._incoming: deque[bytes] = deque()
        self._eof = False
        self._closed = False
        self._error: ProtocolError | None = None
        self._txn: Transaction | None = None
        self._encoder: DataEncoder | None = None
        self._mechanism: ClientMechanism | None = None
        self._challenge: bytes | None = None
        self._auth_rounds = 0
        self._auth_initial: bytes | None = None
        self._auth_cancelled = False
        self._authenticated = False
        self._secrets: tuple[bytes, ...] = ()
        self._secret_pattern: re.Pattern[bytes] | None = None
        self._transcript = None if config.transcript is None else self._redacting_hook

    def _new_parser(self) -> ReplyParserLike:
        config = self._config
        factory: Callable[..., ReplyParserLike] = config.parser_factory or ReplyParser
        return factory(
            max_line_length=config.max_reply_line_length,
            max_lines=config.max_reply_lines,
            max_reply_bytes=config.max_reply_bytes,
        )

    # -- properties ---------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """The current ``ClientState`` (optimistic while pipelined replies are due)."""
        return self._state

    @property
    def capabilities(self) -> Capabilities | None:
        """What the last accepted EHLO/LHLO advertised (masked per the config); None
        before it, after HELO, and after STARTTLS until the new EHLO is answered."""
        return self._caps

    @property
    def tls_active(self) -> bool:
        """True after ``tls_established()``, or from the start under IMPLICIT TLS."""
        return self._tls_active

    @property
    def authenticated(self) -> bool:
        """True once AUTH succeeded (235)."""
        return self._authenticated

    @property
    def outstanding(self) -> tuple[Command, ...]:
        """Commands sent and not yet (fully) answered, oldest first (not the greeting)."""
        return tuple(entry.command for entry in self._pending if entry.command is not None)

    @property
    def awaiting_reply(self) -> bool:
        """True while a reply (the greeting included) is due: keep reading."""
        return bool(self._pending)

    @property
    def final_reply_pending(self) -> bool:
        """True while the reply to the final ``.`` or BDAT LAST is due: if the
        connection dies now the delivery status is unknown (RFC 1047)."""
        return any(entry.verb in FINAL_VERBS for entry in self._pending)

    @property
    def timeout(self) -> float | None:
        """Seconds to wait for what the engine waits on now (RFC 5321 §4.5.3.2), from
        ``ClientConfig.timeouts``; None when it waits on nothing (or only on EOF)."""
        state = self._state
        if state is S.ERROR or state is S.CLOSED or state is S.TLS_HANDSHAKE:
            return None
        timeouts = self._config.timeouts
        pending = self._pending
        if pending:  # asked twice per message: one dict look-up, not a chain of tests
            field: str = _REPLY_TIMEOUTS.get(pending[0].verb, "other")
            return getattr(timeouts, field)  # type: ignore[no-any-return]  # all float | None
        if state is S.CONTENT or state is S.DISCARD_CONTENT:
            return timeouts.data_block
        return None

    # -- errors -------------------------------------------------------------------------

    def _fail(self, error: ProtocolError) -> None:
        if self._error is None:
            self._error = error
        self._state = S.ERROR

    def _raise_if_error(self, local: bool) -> None:
        if self._state is S.ERROR:
            cls = LocalProtocolError if local else type(self._error or LocalProtocolError(""))
            raise cls(f"connection is in the ERROR state after: {self._error}")

    def send_failed(self) -> None:
        """The caller could not write what ``send`` returned: the connection is unusable."""
        self._fail(LocalProtocolError("the caller reported a failed write"))

    # -- receiving ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Queue bytes received from the server; ``b""`` means EOF.

        Data after EOF is a ``LocalProtocolError``; data while the TLS handshake is due
        (after the STARTTLS 220) is a ``RemoteProtocolError`` (RFC 3207 §4).
        """
        state = self._state
        if state is S.ERROR:
            self._raise_if_error(local=True)
        if type(data) is bytes and data and not self._eof and state is not S.TLS_HANDSHAKE:
            self._incoming.append(data)
            return
        try:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise LocalProtocolError(f"receive_data needs bytes, got {type(data).__name__}")
            if self._eof:
                raise LocalProtocolError("receive_data called after EOF")
            if not data:
                self._eof = True
            elif self._state is S.TLS_HANDSHAKE:
                raise RemoteProtocolError(
                    "server sent data after the STARTTLS 220 reply, before TLS (RFC 3207 §4)"
                )
            else:
                self._incoming.append(bytes(data))
        except ProtocolError as error:
            self._fail(error)
            raise

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA``. Raises ``RemoteProtocolError`` when the
        server broke the protocol (then the connection is in ERROR). After EOF has
        been reported, ``ConnectionClosed`` is returned again on every call."""
        if self._state is S.ERROR:
            self._raise_if_error(local=False)
        events = self._events
        if events:
            return events.popleft()
        replies = self._replies
        incoming = self._incoming
        try:
            while True:
                if replies:
                    self._handle_reply(replies.popleft())
                    if events:
                        return events.popleft()
                elif incoming:
                    if self._state is S.TLS_HANDSHAKE:
                        raise RemoteProtocolError("data received before the TLS handshake")
                    parsed = self._parser.feed(incoming.popleft())
                    if self._transcript is not None:
                        for reply in parsed:
                            for line in reply.to_bytes().split(b"\r\n")[:-1]:
                                self._transcript("S", line)
                    if len(parsed) == 1 and not incoming:  # the common case, kept short
                        self._handle_reply(parsed[0])
                        if events:
                            return events.popleft()
                    else:
                        replies.extend(parsed)
                elif self._parser.failed:
                    # The parser returned the replies completed before a grammar error
                    # (so a final "250 queued" is never lost); now the error surfaces.
                    self._parser.feed(b"")
                elif self._eof:
                    if self._closed:
                        return ConnectionClosed()
                    self._closed = True
                    self._handle_eof()
                    return events.popleft()
                else:
                    return NEED_DATA
        except ProtocolError as error:
            self._fail(error)
            raise

    # -- sending ------------------------------------------------------------------------

    def send(self, command: Command) -> bytes:
        """Validate ``command`` against the session and return the bytes to write.

        Raises ``LocalProtocolError`` (nothing to write) when the command is not
        allowed now: wrong state, extension not advertised, a second command without
        PIPELINING, a command after a group-ending one (RFC 2920 §3.1), anything but
        MAIL, RSET, NOOP or QUIT right after the end of the content, TLS policy.
        Like any protocol error it leaves the connection in ERROR (h11 convention).
        """
        state = self._state
        if state is S.ERROR:
            self._raise_if_error(local=True)
        try:
            verb = _VERBS.get(type(command))
            if verb is None:
                raise LocalProtocolError(f"not a command: {command!r}")
            if verb is V.BDAT and command.last:  # type: ignore[attr-defined]  # Bdat
                verb = V.BDAT_LAST
            if verb not in _ALLOWED[state]:
                raise LocalProtocolError(
                    f"{type(command).__name__} cannot be sent in state {state.name}"
                )
            if self._pending and verb not in _NOT_COMMANDS:
                self._check_pipelining(command)
            wire = _SENDERS[verb](self, command, verb, state)
        except ProtocolError as error:
            self._fail(error)
            raise
        self._state = _AFTER_SEND.get((state, verb), state)
        return wire

    def _check_pipelining(self, command: Command) -> None:
        """A command while replies are due: RFC 2920 §3.1 decides."""
        last = self._pending[-1].verb
        if not self._pipelining:
            raise LocalProtocolError(
                f"{type(command).__name__} sent before the previous reply, and the "
                "server does not advertise PIPELINING (RFC 2920)"
            )
        if (
            last in GROUP_ENDERS
            or last is None
            or (last in FINAL_VERBS and _VERBS[type(command)] not in AFTER_CONTENT_END)
        ):
            what = "the greeting" if last is None else last.value
            raise LocalProtocolError(
                f"{type(command).__name__} cannot be pipelined after {what}: "
                "wait for its reply (RFC 2920 §3.1)"
            )

    def _send_content(self, command: Command, verb: Verb, state: ClientState) -> bytes:
        assert isinstance(command, Content) and self._encoder is not None
        wire = self._encoder.feed(command.data)
        if self._transcript is not None:
            self._trace_content(wire)
        return wire

    def _send_end(self, command: Command, verb: Verb, state: ClientState) -> bytes:
        txn = self._txn
        assert txn is not None
        if state is S.CONTENT:
            assert self._encoder is not None
            wire = self._encoder.finish()
            if self._transcript is not None:
                self._trace_content(wire[:-3])
        else:
            wire = b".\r\n"
        self._encoder = None
        remaining = None if self._config.lmtp else 1
        self._pending.append(Pending(verb, command, txn, remaining=remaining))
        if self._transcript is not None:
            self._transcript("C", b".")
        return wire

    def _send_rcpt(self, command: Command, verb: Verb, state: ClientState) -> bytes:
        txn = self._txn
        assert isinstance(command, Rcpt) and txn is not None
        recipients = txn.recipients
        wire = write_rcpt(
            command,
            self._caps,
            smtputf8=txn.mail.smtputf8,
            count=len(recipients),
            rcptmax=self._rcptmax,
        )
        index = txn.add_recipient(command.recipient)
        self._pending.append(Pending(verb, command, txn, index=index))
        if self._transcript is not None:
            self._trace(wire)
        return wire

    def _send_mail(self, command: Command, verb: Verb, state: ClientState) -> bytes:
        assert isinstance(command, Mail)
        self._require_tls_if_policy("MAIL")
        wire = write_mail(command, self._caps, tls_active=self._tls_active)
        self._txn = txn = Transaction(command)
        self._pending.append(Pending(verb, command, txn))
        if self._transcript is not None:
            self._trace(wire)
        return wire

    def _send_raw(self, command: Command, verb: Verb, state: ClientState) -> bytes:
        assert isinstance(command, UnsafeRawBytes)
        if not self._config.allow_unsafe_raw:
            raise LocalProtocolError(
                "UnsafeRawBytes needs ClientConfig(allow_unsafe_raw=True); it is for testing"
            )
        if command.expected_replies:
            remaining = command.expected_replies
            self._pending.append(Pending(verb, command, remaining=remaining))
        wire = bytes(command.data)
        if self._transcript is not None:
            self._trace(wire)
        return wire

    def _simple_command(self, command: Command, verb: Verb, state: ClientState) -> bytes:
        if verb is V.STARTTLS:
            policy = self._config.tls_policy
            if policy is TLSPolicy.NONE or self._tls_active:
                raise LocalProtocolError(
                    "STARTTLS refused: TLS is already active"
                    if self._tls_active
                    else "STARTTLS refused: the TLS policy is NONE"
                )
            if self._caps is None or not self._caps.starttls:
                raise LocalProtocolError("STARTTLS needs the STARTTLS extension, not advertised")
        txn = None
        if verb is V.RSET:
            txn, self._txn = self._txn, None
        elif verb is V.QUIT:
            self._txn = None
        self._pending.append(Pending(verb, command, txn))
        if self._transcript is not None:
            self._trace(_FIXED_WIRE[verb])
        return _FIXED_WIRE[verb]

    def _hello_or_text(self, command: Command, verb: Verb, state: ClientState) -> bytes:
        lmtp = self._config.lmtp
        if verb is V.LHLO and not lmtp:
            raise LocalProtocolError("LHLO is for LMTP: use ClientConfig(lmtp=True)")
        if (verb is V.EHLO or verb is V.HELO) and lmtp:
            raise LocalProtocolError("an LMTP session opens with Lhlo (RFC 2033 §4.1)")
        if (
            verb is V.HELO
            and self._config.tls_policy is TLSPolicy.REQUIRED
            and not self._tls_active
        ):
            raise LocalProtocolError("HELO would rule out STARTTLS, which the policy requires")
        if verb in (V.EHLO, V.HELO, V.LHLO):
            self._caps = None  # RFC 5321 §4.1.4: a new hello resets the session
            self._pipelining = False
            self._rcptmax = None
            self._txn = None
            self._encoder = None
        assert isinstance(command, (Ehlo, Helo, Lhlo, Vrfy, Expn, Help))
        self._pending.append(Pending(verb, command))
        if self._transcript is not None:
            self._trace(command._wire)
        return command._wire

    def _data_command(self, command: Command, verb: Verb, state: ClientState) -> bytes:
        txn = self._txn
        assert txn is not None
        if not txn.recipients:
            raise LocalProtocolError("no RCPT was sent in this transaction (RFC 5321 §3.3)")
        body = txn.mail.body
        txn.commands_after_mail += 1
        if verb is V.DATA:
            if body == "BINARYMIME":
                raise LocalProtocolError("BODY=BINARYMIME content must be sent with BDAT")
            self._pending.append(Pending(verb, command, txn))
            if self._transcript is not None:
                self._transcript("C", b"DATA")
            return b"DATA\r\n"
        assert isinstance(command, Bdat)
        if self._caps is None or not self._caps.chunking:
            raise LocalProtocolError("BDAT needs the CHUNKING extension, not advertised")
        data = command.data if type(command.data) is bytes else bytes(command.data)
        if body not in ("8BITMIME", "BINARYMIME") and not data.isascii():
            raise LocalProtocolError(
                "8-bit content needs Mail(body='8BITMIME') or 'BINARYMIME' (RFC 6152, RFC 3030)"
            )
        remaining = None if verb is V.BDAT_LAST and self._config.lmtp else 1
        self._pending.append(Pending(verb, command, txn, remaining=remaining))
        header = bdat_header(len(data), verb is V.BDAT_LAST)
        if self._transcript is not None:
            self._transcript("C", header[:-2])
            self._trace_content(data, verbatim_ok=False)
        return header + data

    def _auth_command(self, command: Command, verb: Verb, state: ClientState) -> bytes:
        config = self._config
        if verb is V.AUTH:
            assert isinstance(command, Auth)
            self._require_tls_if_policy("AUTH")
            if not self._tls_active and not config.allow_cleartext_auth:
                raise LocalProtocolError(
                    "AUTH over cleartext is refused; use TLS or "
                    "ClientConfig(allow_cleartext_auth=True)"
                )
            if self._authenticated:
                raise LocalProtocolError("already authenticated (RFC 4954 §4)")
            mechanism = command.mechanism
            name = mechanism.name
            if self._caps is None or name not in self._caps.auth_mechanisms:
                raise LocalProtocolError(f"the server does not advertise AUTH {name}")
            initial = mechanism.initial_response()
            wire, on_line = write_auth(name, initial)
            self._mechanism = mechanism
            secrets = [secret for secret in mechanism.secrets if secret]
            secrets += [base64.b64encode(secret) for secret in secrets]
            self._secrets = tuple(dict.fromkeys(self._secrets + tuple(secrets)))
            self._secret_pattern = _secret_pattern(self._secrets)
            self._auth_rounds = 0
            self._auth_cancelled = False
            self._auth_initial = None if on_line else initial
            self._pending.append(Pending(verb, command))
            if self._transcript is not None:
                self._transcript(
                    "C", b"AUTH " + name.encode() + (b" <redacted>" if on_line else b"")
                )
            return wire
        response = None if self._auth_cancelled else self._auth_response()
        self._auth_cancelled = response is None
        wire = write_auth_response(response)
        self._pending.append(Pending(verb, command))
        if self._transcript is not None:
            self._transcript("C", b"*" if response is None else b"<redacted>")
        return wire

    def _auth_response(self) -> bytes | None:
        """What to answer the pending challenge with; None means cancel (``*``)."""
        challenge = self._challenge
        if self._auth_rounds > self._config.max_auth_rounds or challenge is None:
            return None
        if self._auth_initial is not None:
            initial, self._auth_initial = self._auth_initial, None
            return initial if challenge == b"" else None
        assert self._mechanism is not None
        try:
            return self._mechanism.respond(challenge)
        except LocalProtocolError:  # SASLError: the mechanism cannot answer; cancel
            return None

    def _require_tls_if_policy(self, what: str) -> None:
        if self._config.tls_policy is TLSPolicy.REQUIRED and not self._tls_active:
            raise LocalProtocolError(f"{what} refused: the TLS policy requires STARTTLS first")

    # -- TLS ----------------------------------------------------------------------------

    def tls_established(self) -> None:
        """The caller finished the TLS handshake after ``TLSReady``.

        Capabilities are forgotten; send EHLO (or LHLO) again (RFC 3207 §4.2).
        """
        self._raise_if_error(local=True)
        if self._state is not S.TLS_HANDSHAKE:
            error = LocalProtocolError("tls_established() without a STARTTLS 220 reply")
            self._fail(error)
            raise error
        self._tls_active = True
        self._caps = None
        self._pipelining = False
        self._rcptmax = None
        self._parser = self._new_parser()
        self._state = S.HELLO

    # -- transcript ---------------------------------------------------------------------

    def _redacting_hook(self, direction: Literal["C", "S"], line: bytes) -> None:
        """The caller's transcript hook, after removing every known secret (docs/design.md
        §4 rule 11): the AUTH mechanism's ``secrets`` and their base64 forms.

        One pass over the line, longest secret first, so a replacement is never
        rescanned. AUTH lines are already replaced whole; secrets shorter than
        ``_MIN_REDACTED_SECRET`` octets are not hunted for elsewhere, because every
        "e" of a one-letter password would otherwise shred the whole transcript.
        """
        pattern = self._secret_pattern
        if pattern is not None:
            line = pattern.sub(b"<redacted>", line)
        hook = self._config.transcript
        assert hook is not None
        hook(direction, line)

    def _trace(self, wire: bytes) -> None:
        hook = self._transcript
        if hook is not None:
            for line in wire.split(b"\r\n")[:-1]:
                hook("C", line)

    def _trace_content(self, wire: bytes, *, verbatim_ok: bool = True) -> None:
        hook = self._transcript
        assert hook is not None
        if verbatim_ok and self._config.transcript_content:
            for line in wire.split(b"\r\n")[:-1]:
                hook("C", line)
        elif wire:
            lines = wire.count(b"\r\n")
            hook("C", b"<content: %d octets, %d line ends>" % (len(wire), lines))


#: The ``Timeouts`` field bounding the wait for the reply to each verb (None: the
#: greeting) (RFC 5321 §4.5.3.2); any other verb waits ``other``.
_REPLY_TIMEOUTS: dict[Verb | None, str] = {
    None: "greeting",
    V.MAIL: "mail",
    V.RCPT: "rcpt",
    V.DATA: "data_initiation",
    **dict.fromkeys(FINAL_VERBS, "data_termination"),
    V.BDAT: "data_block",
}

_Sender = Callable[[ClientConnection, Command, Verb, ClientState], bytes]
#: How each verb is turned into bytes (every sender queues the replies it expects).
_SENDERS: dict[Verb, _Sender] = {
    V.CONTENT: ClientConnection._send_content,
    V.END_OF_CONTENT: ClientConnection._send_end,
    V.RCPT: ClientConnection._send_rcpt,
    V.MAIL: ClientConnection._send_mail,
    V.DATA: ClientConnection._data_command,
    V.BDAT: ClientConnection._data_command,
    V.BDAT_LAST: ClientConnection._data_command,
    V.AUTH: ClientConnection._auth_command,
    V.AUTH_CONTINUE: ClientConnection._auth_command,
    V.RAW: ClientConnection._send_raw,
    **{verb: ClientConnection._simple_command for verb in _FIXED_WIRE},
    **{
        verb: ClientConnection._hello_or_text
        for verb in (V.EHLO, V.HELO, V.LHLO, V.VRFY, V.EXPN, V.HELP)
    },
}
