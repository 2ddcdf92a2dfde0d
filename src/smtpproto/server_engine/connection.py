"""``ServerConnection``: the server role of the engine, sans-IO, in the h11 style.

Theory of operation. Four verbs, like the client: ``receive_data(bytes)`` (``b""`` is
EOF), ``next_event()`` (an event from ``_server_events``, ``NEED_DATA`` or ``PAUSED``),
``send(reply) -> bytes`` and ``send_failed()``; plus ``tls_established()``, and
``receive_line(data)``, the first two in one step for a read that is one plain command
line alone, and ``receive_content(data)``, the same for a read of DATA content, up to
and with the end of the message (a front end's common cases; ``None`` leaves the read
to the verbs). The caller
chooses every reply (helpers in ``_server_replies``). One command is handled at a time:
after an event with ``expects_reply`` the connection is PAUSED — nothing more is
parsed — until the caller sends the reply, because the reply decides the next state (a
refused MAIL means the RCPT pipelined behind it is out of sequence). Pipelined input
(RFC 2920) simply waits in the buffer, bounded by ``max_pipelined_input``. Input that
was already buffered when the caller sent a reply the client had to wait for (RFC 2920
§3.1; every reply without PIPELINING) is *early*: ``_early`` counts those octets at the
head of the buffer, and a line or DATA content starting there is flagged on its event
or refused with 554 (``ServerConfig.unauthorized_pipelining``, docs/design.md §4 rule 10).

Input is read in one of three modes. Command lines end only at CRLF (RFC 5321 §2.3.8):
a bare CR or LF inside a line makes the line a syntax error, never a line end; a line
over its limit is refused as soon as the limit is crossed (``LineReader``, in
``lines``). DATA content goes through the shared ``DataDecoder`` (only
``CRLF.CRLF`` ends it, dot-unstuffing, line bound). BDAT content is counted off exactly
(RFC 3030) and never looked at; a BDAT the server must refuse still has its chunk
consumed before the refusal, so binary octets can never run as commands.

STARTTLS (RFC 3207 §4, CVE-2011-0411): when the caller sends the 220, every octet
still buffered and every octet fed before ``tls_established()`` is dropped unparsed and
reported once as ``PlaintextDiscarded``; afterwards the session starts over (EHLO, no
extensions, not authenticated).

The extensions in force are the keywords of the last 250 EHLO/LHLO reply the caller
sent: MAIL/RCPT parameters, BDAT, STARTTLS and AUTH are accepted only when advertised.
Errors: caller misuse raises ``LocalProtocolError`` with no state change; input that
cannot be answered any more (a DATA line over the decoder's bound, a flood of pipelined
commands) raises ``RemoteProtocolError`` and the state is a sticky ERROR in which only
one last 4xx/5xx reply may be sent. Any other exception out of a public method (h11's
rule, docs/design.md §2) also leaves ERROR behind before it propagates: the state may
be half updated. Everything else a client does wrong is an event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from ..wire.abnf import MAX_COMMAND_LINE
from ..wire.datacodec import DataDecoder
from ..wire.errors import LocalProtocolError, RemoteProtocolError
from ..wire.grammar import SyntaxErrorInCommand, _find_control
from ..wire.need_data import NEED_DATA, NeedData
from ..wire.parsing import parse_domain
from ..wire.reply import Reply
from .commands import (
    PLAIN_MEMO,
    REDACTED,
    advertised_limits,
    claims_auth,
    decode_auth_response,
    line_verb,
    parse_auth,
    parse_bdat,
    parse_extensions,
    parse_mail,
    parse_rcpt,
    plain_event,
    redact_auth_line,
    size_limit,
    split_verb,
)
from .config import ServerConfig
from .events import (
    PAUSED,
    BdatStarted,
    ChunkComplete,
    ClientDisconnected,
    CommandRejected,
    ContentReceived,
    DataRequested,
    EhloReceived,
    ExpnReceived,
    HeloReceived,
    HelpReceived,
    MailReceived,
    MessageComplete,
    NoopReceived,
    Paused,
    PlaintextDiscarded,
    QuitReceived,
    ResetReceived,
    ServerEvent,
    StartTLSRequested,
    UnknownCommand,
    VrfyReceived,
    positional,
)
from .lines import TOO_LONG, LineReader
from .replies import (
    bad_sequence,
    line_too_long,
    message_too_large,
    not_implemented,
    safe_text,
    synchronization_error,
    syntax_error,
    too_many_recipients,
    too_many_transactions,
)
from .states import (
    ALLOWED,
    COMMAND_STATES,
    INTERMEDIATE,
    ServerState,
    code_allowed,
    sequence_reason,
)

__all__ = ["ServerConnection"]

_S = ServerState
# Each state once as a module constant: reading a member off an ``Enum`` class is an
# attribute look-up through its metaclass (about 60 ns on CPython 3.11), and the
# per-command path reads a dozen of them.
_AUTH = _S.AUTH
_BDAT = _S.BDAT
_CLOSED = _S.CLOSED
_CONNECTED = _S.CONNECTED
_DATA = _S.DATA
_ERROR = _S.ERROR
_GREETING = _S.GREETING
_MAIL = _S.MAIL
_RCPT = _S.RCPT
_READY = _S.READY
_REJECTING = _S.REJECTING
_TLS_HANDSHAKE = _S.TLS_HANDSHAKE
_TRANSACTION = frozenset({_MAIL, _RCPT})
#: States in which input is read as lines (commands, or AUTH responses).
_LINE_STATES = frozenset({*COMMAND_STATES, _AUTH})
#: Pending kinds whose reply ends a pipelined group (RFC 2920 §3.1; "other" is decided
#: by the event: NOOP, VRFY, EXPN and unknown verbs end a group, HELP does not).
_GROUP_ENDING = frozenset({"greeting", "ehlo", "helo", "data", "starttls", "auth", "quit"})
#: The pending kinds ``_must_wait_for`` may say True for (any other: False).
_MAY_WAIT = _GROUP_ENDING | {"rejected", "other"}
#: Verbs that may be followed at once in a pipelined group, refused or not (RFC 2920
#: §3.1: MAIL, RCPT, RSET; BDAT, RFC 3030 §4.2; HELP is not in the list of the last).
_PIPELINABLE_VERBS = frozenset({b"", b"MAIL", b"RCPT", b"RSET", b"BDAT", b"HELP"})
#: Where RSET, QUIT and NOOP are in sequence (``ALLOWED``, by the verb's octets).
_ANY_COMMAND_STATE = {verb: ALLOWED[verb.decode("ascii")] for verb in (b"RSET", b"QUIT", b"NOOP")}
#: The pending kind of RSET, QUIT and NOOP.
_BARE_KINDS = {b"RSET": "rset", b"QUIT": "quit", b"NOOP": "other"}
#: The pending kinds whose replies ``code_allowed`` rules beyond "not 3xx" (a 2xx to
#: any other kind needs no look at it).
_CODE_RULED = frozenset({"greeting", "quit", "sync", "starttls", *INTERMEDIATE})
#: The per-message events, made with their slots filled directly (``positional``).
_content_received = positional(ContentReceived)
_message_complete = positional(MessageComplete)
#: Replies checked and put in wire form by ``send``, by ``id`` (with the reply, so the
#: id stays its own), shared by every connection: the check depends on the reply alone,
#: and a policy answers with the same few ``Reply`` objects. Emptied when full.
_WIRES: dict[int, tuple[Reply, bytes]] = {}
_MAX_WIRES = 64


class ServerConnection:
    """The server side of one SMTP (or, with ``lmtp``, LMTP — RFC 2033) session.

    ``tls_active`` says the connection is already encrypted (implicit TLS, RFC 8314):
    STARTTLS is then out of sequence. Start by sending ``greeting(...)``: until then
    ``next_event()`` is PAUSED.
    """

    # Slots: a server holds one per client; no per-instance dict (docs/design.md §8).
    __slots__ = (
        "_bdat_used",
        "_buf",
        "_chunk_last",
        "_chunk_left",
        "_chunk_refusal",
        "_chunk_return",
        "_chunk_size",
        "_closed_clean",
        "_content_early",
        "_content_limit",
        "_credentials_window",
        "_decoder",
        "_early",
        "_eof",
        "_extensions",
        "_fast_path",
        "_lines",
        "_mail",
        "_mail_bound",
        "_mail_commands",
        "_message_done",
        "_message_size",
        "_pending",
        "_pending_event",
        "_rcpt_bound",
        "_recipients",
        "_replies_due",
        "_size_limit",
        "_state",
        "_to_report",
        "_too_large",
        "_verb",
        "authenticated",
        "client_name",
        "config",
        "discarded_plaintext",
        "error_count",
        "lmtp",
        "tls_active",
    )

    def __init__(
        self, *, lmtp: bool = False, tls_active: bool = False, config: ServerConfig | None = None
    ) -> None:
        self.config = config if config is not None else ServerConfig()
        self.lmtp = lmtp
        self.tls_active = tls_active
        #: True after a 235 reply (RFC 4954 §6); cleared by STARTTLS.
        self.authenticated = False
        #: The EHLO/HELO/LHLO argument of the last accepted greeting exchange.
        self.client_name: str | None = None
        #: Octets dropped between STARTTLS and the TLS handshake, in total.
        self.discarded_plaintext = 0
        #: Commands refused by the engine or unknown (for a caller's abuse limit).
        self.error_count = 0
        self._state = _GREETING
        self._lines = LineReader()
        self._buf = self._lines.buf  # the same bytearray, never replaced
        self._eof = False
        self._pending: str | None = "greeting"
        self._replies_due = 1
        self._pending_event: ServerEvent | None = None
        self._extensions: dict[str, str] = {}
        #: The recipients one transaction takes: ``max_recipients``, or the advertised
        #: LIMITS RCPTMAX when lower; the advertised MAILMAX and the MAIL commands
        #: counted against it since the session (re)started (RFC 9422 §4.1, §4.2).
        self._rcpt_bound = self.config.max_recipients
        self._mail_bound: int | None = None
        self._mail_commands = 0
        self._mail: MailReceived | None = None
        self._recipients: list[str] = []
        self._bdat_used = False
        self._decoder: DataDecoder | None = None
        self._message_done = False
        self._message_size = 0
        self._too_large = False
        self._chunk_left = 0
        self._chunk_size = 0
        self._chunk_last = False
        self._chunk_refusal: Reply | None = None
        self._chunk_return = _READY
        self._to_report = 0
        self._closed_clean: bool | None = None
        #: True from an AUTH line until a line with a known verb: the lines in between
        #: may be credentials (docs/design.md §4 rule 11) and are never kept.
        self._credentials_window = False
        #: How many octets at the head of the input arrived before the last reply the
        #: client had to wait for (RFC 2920 §3.1): a line starting there is early.
        self._early = 0
        self._content_early = False
        #: The verb of the last command line (``line_verb``; empty after a line too
        #: long to read): whether its refusal ends a pipelined group.
        self._verb = b""
        #: Plain transaction lines take ``_plain_line`` and DATA
        #: content skips ``_next`` (off only to test them against the general path).
        self._fast_path = True
        #: The content size limit of the current message (``size_limit``), set when
        #: its content starts from ``_content_limit``: the limit of the extensions in
        #: force, worked out whenever they change (``_set_limits``).
        self._size_limit: int | None = None
        self._content_limit = size_limit(self._extensions, self.config.max_message_size)

    # -- read-only views --------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        """The current ``ServerState``."""
        return self._state

    @property
    def extensions(self) -> Mapping[str, str]:
        """Keyword -> parameters advertised in the last 250 EHLO/LHLO reply sent."""
        return MappingProxyType(self._extensions)

    @property
    def sender(self) -> str | None:
        """The accepted MAIL FROM of the current transaction (``""`` for ``<>``)."""
        return None if self._mail is None else self._mail.sender

    @property
    def recipients(self) -> tuple[str, ...]:
        """The accepted recipients of the current transaction, in order."""
        return tuple(self._recipients)

    @property
    def replies_due(self) -> int:
        """How many replies the caller owes before input is parsed again."""
        return self._replies_due

    @property
    def timeout(self) -> float:
        """Seconds to wait for client input (RFC 5321 §4.5.3.2.7); adapters enforce it."""
        return self.config.timeout

    # -- the four verbs ----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed octets read from the client; ``b""`` means EOF.

        Octets fed between STARTTLS's 220 and ``tls_established()`` are dropped and
        counted; octets fed after the session is CLOSED are ignored. Raises
        ``LocalProtocolError`` for data after EOF, data that is not bytes-like, or a
        chunk that would take the octets held (fed, not yet consumed by ``next_event``)
        past ``config.max_receive_buffer``; nothing is stored then.
        """
        try:
            if type(data) is not bytes:
                if not isinstance(data, (bytearray, memoryview)):
                    raise LocalProtocolError(f"receive_data needs bytes, got {type(data).__name__}")
                data = bytes(data)  # octets, whatever the view's format or strides
            if self._eof:
                raise LocalProtocolError("receive_data() after EOF")
            if not data:
                self._eof = True
            elif self._state is _TLS_HANDSHAKE:
                self.discarded_plaintext += len(data)
                self._to_report += len(data)
            elif self._state is not _CLOSED:
                cap = self.config.max_receive_buffer
                if len(self._buf) + len(data) > cap:
                    raise LocalProtocolError(
                        f"receive_data: {len(self._buf)} octets held and {len(data)} more "
                        f"would exceed max_receive_buffer={cap}; call next_event() until "
                        "NEED_DATA or PAUSED before feeding more"
                    )
                self._buf += data
        except LocalProtocolError:
            raise  # caller misuse, found before any change: the session stays usable
        except BaseException:  # h11's rule: whatever else escapes leaves ERROR behind
            self._state = _ERROR
            raise

    def receive_line(self, data: bytes) -> ServerEvent | None:
        """``receive_data(data)`` then ``next_event()`` in one step, for the common case
        of a front end that reads one command at a time: ``data`` is one whole plain
        MAIL/RCPT/DATA/RSET/NOOP/QUIT line (CRLF-terminated, within 512 octets, nothing
        else) in sequence, nothing is buffered or owed, and the line needs no flag. Then
        its event, exactly as the two calls would make it; else ``None`` having changed
        nothing, and the caller feeds ``data`` with ``receive_data`` as usual."""
        try:
            if (
                type(data) is not bytes
                or self._buf
                or self._replies_due
                or self._early
                or self._eof
                or self._to_report
                or not self._fast_path
                or self._state not in COMMAND_STATES
                or self._lines.discarding
                or len(data) > MAX_COMMAND_LINE
                or data.find(b"\r\n") != len(data) - 2
                or len(data) > self.config.max_receive_buffer
            ):
                return None
            return self._plain_event(data[:-2])
        except BaseException:  # h11's rule: whatever escapes leaves ERROR behind
            self._state = _ERROR
            raise

    def receive_content(
        self, data: bytes
    ) -> tuple[ContentReceived | None, ServerEvent | None] | None:
        """``receive_data(data)`` then ``next_event()`` until ``NEED_DATA``, in one step,
        for a read of DATA content (the front end's other common case): the connection
        is in DATA with nothing buffered, owed or flagged and ``data`` is non-empty
        bytes within ``max_receive_buffer``. ``data`` goes through the decoder twin in
        one call (often the whole message and its ``CRLF.CRLF``); returns its
        ``ContentReceived`` (``None`` when the read decoded to nothing or the message
        is over its size limit) and the event of the end of the content
        (``MessageComplete``, or the 552 ``CommandRejected``; ``None`` while the
        content goes on), exactly as the two verbs would make them, what follows the
        end staying buffered for ``next_event``. Else ``None`` having changed nothing,
        and the caller feeds ``data`` with ``receive_data`` as usual."""
        try:
            if (
                self._state is not _DATA
                or type(data) is not bytes
                or not data
                or self._buf
                or self._replies_due
                or self._early
                or self._eof
                or self._to_report
                or self._message_done
                or not self._fast_path
                or len(data) > self.config.max_receive_buffer
            ):
                return None
            assert self._decoder is not None
            content, done = self._decoder.feed(data)
            event = self._account(content)
            if not done:
                return event, None
            self._buf += self._decoder.leftover
            self._state = _RCPT
            return event, self._end_of_message(bdat=False)
        except BaseException:  # h11's rule: whatever escapes leaves ERROR behind
            self._state = _ERROR
            raise

    def next_event(self) -> ServerEvent | NeedData | Paused:
        """The next event, ``NEED_DATA`` (feed more) or ``PAUSED`` (reply first, or
        finish the TLS handshake, or the session is CLOSED). Raises
        ``RemoteProtocolError`` (then sticky) when input can no longer be answered."""
        if self._state is _ERROR:
            raise RemoteProtocolError("the connection is in the ERROR state")
        try:
            if self._replies_due:
                if len(self._buf) > self.config.max_pipelined_input:
                    raise RemoteProtocolError(
                        f"client sent more than {self.config.max_pipelined_input} octets "
                        "without waiting for replies (RFC 2920)"
                    )
                return PAUSED
            if not self._early:
                state = self._state
                if state is _DATA and self._fast_path and not self._to_report:
                    # what ``_next`` does in DATA, in one step
                    event = self._data_event() if self._buf or self._message_done else None
                    if event is not None or not self._eof:
                        return NEED_DATA if event is None else event
                elif not self._buf:
                    if state in _LINE_STATES and not self._eof and not self._to_report:
                        return NEED_DATA  # what ``_next`` would say, in one step
                elif (
                    state in COMMAND_STATES
                    and self._fast_path
                    and not self._to_report
                    and not self._lines.discarding
                ):
                    event = self._plain_line()
                    if event is not None:
                        return event
                return self._next()
            before = len(self._buf)
            found = self._next()
            self._early = max(0, self._early - (before - len(self._buf)))
            return found
        except BaseException:  # h11's rule: whatever escapes leaves ERROR behind
            self._state = _ERROR
            raise

    def send(self, reply: Reply) -> bytes:
        """Apply the caller's reply to the command it answers; return the octets to write.

        421 may be sent at any time and CLOSES the session (RFC 5321 §3.8). 354 answers
        only DATA, 334 only AUTH, 220 only the greeting or STARTTLS, 221 only QUIT.
        In ERROR only a 4xx/5xx reply is allowed (a last word before closing). Raises
        ``LocalProtocolError`` (nothing changes) for a reply nobody waits for, a code
        that cannot answer the pending command, or CR/NUL or a line over 512 octets in
        the reply (RFC 5321 §4.5.3.1.5).
        """
        checked = False  # True once the reply is accepted and the state may change
        try:
            known = _WIRES.get(id(reply))
            if known is not None and known[0] is reply:  # checked already: a Reply
                wire = known[1]
            elif isinstance(reply, Reply):
                wire = self._checked_wire(reply)
            else:
                raise LocalProtocolError(f"send() takes a Reply, got {type(reply).__name__}")
            code = reply.code
            state = self._state
            if state is _ERROR:
                if code < 400:
                    raise LocalProtocolError("in ERROR only a 4xx/5xx reply may be sent")
                return wire
            if state is _CLOSED:
                raise LocalProtocolError("the session is closed; nothing more may be sent")
            if code == 421:
                checked = True
                self._state = _CLOSED
                self._replies_due = 0
                self._pending = None
                return wire
            kind = self._pending
            if kind is None or not self._replies_due:
                raise LocalProtocolError("no command is waiting for a reply")
            # A 2xx answers any kind but those with rules of their own (``code_allowed``).
            if not (200 <= code < 300 and kind not in _CODE_RULED):
                if not code_allowed(kind, code):
                    raise LocalProtocolError(f"{code} cannot answer the pending {kind!r}")
                if 300 <= code < 400 and INTERMEDIATE.get(kind) != code:
                    raise LocalProtocolError(f"{code} cannot answer the pending {kind!r}")
            checked = True
            self._replies_due -= 1
            if self._replies_due:
                self._apply(kind, reply)
                return wire
            self._pending = None
            # The kinds of a plain transaction in line (``_apply`` does the rest).
            if kind == "mail" and 200 <= code < 300:
                event = self._pending_event
                assert isinstance(event, MailReceived)
                self._mail = event
                self._state = _MAIL
            elif kind == "rcpt" and 200 <= code < 300:
                self._recipients.append(getattr(self._pending_event, "recipient", ""))
                self._state = _RCPT
            elif kind == "message":  # its last reply (``_apply``'s branch, in line)
                self._end_transaction()
            else:
                self._apply(kind, reply)
            if "PIPELINING" not in self._extensions or (
                kind in _MAY_WAIT and self._must_wait_for(kind)
            ):
                self._early = len(self._buf)  # all of it was written before this reply
            return wire
        except BaseException as error:
            # Caller misuse found before any change leaves the session usable; anything
            # else (h11's rule) leaves it in ERROR.
            if checked or not isinstance(error, LocalProtocolError):
                self._state = _ERROR
            raise

    def _checked_wire(self, reply: Reply) -> bytes:
        """``reply`` in wire form, once its lines are checked (no CR or NUL, at most 512
        octets with code and CRLF, RFC 5321 §4.5.3.1.5); remembered by identity for the
        next ``send`` (``_WIRES``)."""
        for line in reply.raw_lines:
            if b"\r" in line or b"\x00" in line or len(line) + 6 > 512:
                raise LocalProtocolError("reply lines must be at most 512 octets, no CR/NUL")
        lines = reply.raw_lines
        wire = b"%d %b\r\n" % (reply.code, lines[0]) if len(lines) == 1 else reply.to_bytes()
        if len(_WIRES) >= _MAX_WIRES:
            _WIRES.clear()
        _WIRES[id(reply)] = (reply, wire)
        return wire

    def send_failed(self) -> None:
        """The caller's write failed: the connection is unusable (sticky ERROR)."""
        self._state = _ERROR

    def tls_established(self) -> None:
        """The TLS handshake after STARTTLS succeeded: the session starts over (RFC 3207
        §4.2: forget the greeting exchange and everything learned before TLS)."""
        if self._state is not _TLS_HANDSHAKE:
            raise LocalProtocolError("tls_established() is only valid after a 220 to STARTTLS")
        try:
            self.tls_active = True
            self.authenticated = False
            self.client_name = None
            self._extensions = {}
            self._set_limits()
            self._mail_commands = 0
            self._clear_transaction()
            self._state = _CONNECTED
        except BaseException:
            self._state = _ERROR
            raise

    # -- replies applied to the state ---------------------------------------------------

    def _apply(self, kind: str, reply: Reply) -> None:
        ok = 200 <= reply.code < 300  # reply.is_success
        event = self._pending_event
        # ``send`` applies an accepted MAIL or RCPT itself (one reply each): the kinds
        # of a plain transaction first, the branches exclude each other.
        if kind == "data" and reply.code == 354:
            self._decoder = DataDecoder(max_line_length=self.config.max_data_line)
            self._start_content()
            self._state = _DATA
        elif kind in ("message", "chunk_failed") or (kind == "chunk" and not ok):
            if not self._replies_due:
                self._end_transaction()
        elif kind == "greeting":
            self._state = _CONNECTED if reply.code == 220 else _REJECTING
        elif kind in ("ehlo", "helo") and ok:
            assert isinstance(event, (EhloReceived, HeloReceived))
            self.client_name = event.domain
            self._extensions = parse_extensions(reply) if kind == "ehlo" else {}
            self._set_limits()
            self._clear_transaction()
            self._state = _READY
        elif kind == "starttls" and reply.code == 220:
            dropped = self._lines.drop()
            self.discarded_plaintext += dropped
            self._to_report += dropped
            self._state = _TLS_HANDSHAKE
        elif kind == "auth":
            if reply.code == 334:
                self._state = _AUTH
            else:
                self.authenticated = self.authenticated or reply.code == 235
                self._state = _READY
        elif kind == "rset" and ok:
            self._end_transaction()
        elif kind == "quit" or kind == "sync":
            self._state = _CLOSED

    def _must_wait_for(self, kind: str) -> bool:
        """Whether the client had to wait for the reply to ``kind`` before writing more,
        with PIPELINING in force (without it, every reply: RFC 5321 §4.3; ``send``
        checks that first): RFC 2920 §3.1, the greeting and the replies to EHLO/HELO,
        DATA, NOOP, VRFY, EXPN, QUIT and to the extension commands STARTTLS, AUTH
        (each step) and unknown verbs. A refused line counts by its verb, whatever the
        refusal (the client waits after a refused DATA as after an accepted one); an
        over-long line, the end of the content and BDAT chunks may be followed at
        once."""
        if kind in _GROUP_ENDING:
            return True
        if kind == "rejected":
            return self._verb not in _PIPELINABLE_VERBS
        return kind == "other" and not isinstance(self._pending_event, HelpReceived)

    def _set_limits(self) -> None:
        """Hold the client to the LIMITS of the EHLO reply in force (RFC 9422 §4: the
        limits the server "intends to apply"), within the config's own bound."""
        rcptmax, self._mail_bound = advertised_limits(self._extensions)
        self._content_limit = size_limit(self._extensions, self.config.max_message_size)
        bound = self.config.max_recipients
        self._rcpt_bound = bound if rcptmax is None else min(rcptmax, bound)

    def _clear_transaction(self) -> None:
        self._mail = None
        self._recipients = []
        self._bdat_used = False
        self._decoder = None

    def _end_transaction(self) -> None:
        self._clear_transaction()
        if self._state in _TRANSACTION:
            self._state = _READY

    # -- input -------------------------------------------------------------------------

    def _expect(self, kind: str, event: ServerEvent, replies: int = 1) -> ServerEvent:
        self._pending = kind
        self._pending_event = event
        self._replies_due = replies
        return event

    def _reject(
        self, reply: Reply, reason: str, line: bytes = b"", kind: str = "rejected", n: int = 1
    ) -> ServerEvent:
        self.error_count += 1
        event = CommandRejected(reply=reply, reason=reason, line=self._shown(line))
        return self._expect(kind, event, n)

    def _shown(self, line: bytes) -> bytes:
        """``line`` as an event may carry it (docs/design.md §4 rule 11): an AUTH line
        (any case, any separator) loses its initial response; any other line in the
        credentials window becomes ``<redacted>``."""
        if not line:
            return line
        if claims_auth(line):
            return redact_auth_line(line)
        return REDACTED if self._credentials_window else line

    def _track_credentials(self, line: bytes) -> None:
        """Open the credentials window at an AUTH line (accepted, refused or malformed);
        close it at the next line whose verb is a known command (docs/design.md §4
        rule 11). Lines with an unknown or malformed verb keep it open: the first word
        must be the verb itself (``QUIT+c2Vj`` is base64, not QUIT)."""
        if claims_auth(line):
            self._credentials_window = True
        elif self._credentials_window:
            word = line.partition(b" ")[0].upper()
            self._credentials_window = word.decode("latin-1") not in ALLOWED

    def _reject_error(self, error: SyntaxErrorInCommand, line: bytes, kind: str) -> ServerEvent:
        text = f"{error.enhanced} {safe_text(error.message)}"
        return self._reject(Reply(error.code, (text.encode("ascii"),)), error.message, line, kind)

    def _unsynchronized(
        self,
        line: bytes,
        reason: str = "command sent before the reply it had to wait for (RFC 2920 section 3.1)",
    ) -> ServerEvent:
        """Refuse input sent before the reply it had to wait for; the session closes
        after the reply (``ServerConfig.unauthorized_pipelining == "reject"``)."""
        self._track_credentials(line)
        self._lines.drop()  # the rest is out of step with the dialogue: never parsed
        self._early = 0
        event = CommandRejected(
            reply=synchronization_error(),
            reason=reason,
            line=self._shown(line),
            unauthorized_pipelining=True,
        )
        self.error_count += 1
        return self._expect("sync", event)

    def _flag(self, event: ServerEvent, early: bool) -> ServerEvent:
        """``event`` marked as early (``unauthorized_pipelining``) when ``early``."""
        if not early:
            return event
        flagged = dataclasses.replace(event, unauthorized_pipelining=True)
        if self._pending_event is event:
            self._pending_event = flagged
        return flagged

    def _next(self) -> ServerEvent | NeedData | Paused:
        if self._to_report and self._state is not _TLS_HANDSHAKE:
            size, self._to_report = self._to_report, 0
            return PlaintextDiscarded(size=size)
        state = self._state
        event: ServerEvent | None
        if self._closed_clean is not None:  # EOF already reported: report it again
            return ClientDisconnected(clean=self._closed_clean)
        if state is _CLOSED or state is _TLS_HANDSHAKE:
            if not self._eof:
                return PAUSED
            return self._closed(clean=state is _CLOSED)
        if state is _DATA:
            if self._early and not self._message_done:  # content written before the 354
                if self.config.unauthorized_pipelining == "reject":
                    return self._unsynchronized(b"", "DATA content sent before the 354 reply")
                self._content_early = True
            event = self._data_event()
        elif state is _BDAT:
            event = self._bdat_event()
        else:
            early = self._early > 0  # the line's first octet came before the reply
            line = self._lines.read(self.config, state is _AUTH)
            if line is TOO_LONG:
                self._verb = b""
                limit = self._lines.crossed
                return self._reject(line_too_long(limit), f"line longer than {limit} octets")
            if isinstance(line, bytes):
                if early and self.config.unauthorized_pipelining == "reject":
                    # in AUTH a line is a SASL response: a credential, whatever its verb
                    return self._unsynchronized(REDACTED if state is _AUTH else line)
                if state is _AUTH:
                    return self._flag(self._auth_line(line), early)
                event = self._command(line)  # None: a refused BDAT chunk is still arriving
                state = self._state
                if event is not None:
                    return self._flag(event, early) if early else event
            else:
                event = None
        if event is not None:
            return event
        if self._eof:
            return self._closed(
                state in COMMAND_STATES and not self._buf and not self._lines.discarding
            )
        return NEED_DATA

    def _plain_line(self) -> ServerEvent | None:
        """``_plain_event`` of the command line at the head of the input, the line
        consumed; else ``None`` and nothing consumed, for ``_next``. Only a line within
        the shortest line limit is looked at, so no limit can be crossed
        (``LineReader``)."""
        buf = self._buf
        end = buf.find(b"\r\n", self._lines.scan)
        if end < 0 or end + 2 > MAX_COMMAND_LINE:
            return None
        event = self._plain_event(bytes(buf[:end]))
        if event is not None:
            del buf[: end + 2]
            self._lines.scan = 0
        return event

    def _plain_event(self, line: bytes) -> ServerEvent | None:
        """The event of a plain MAIL/RCPT/DATA/RSET/NOOP/QUIT line (``plain_event``, its
        memo read in line) when it is in sequence, with the state ``_command`` would
        leave; ``None`` leaves the line to ``_command``'s general path (a refusal, a
        limit, DATA after BDAT ...)."""
        plain = PLAIN_MEMO.get(line) or plain_event(line)
        if plain is None:
            return None
        verb, event = plain
        state = self._state
        if verb == b"MAIL":
            bound = self._mail_bound  # RFC 9422 §4.1: every MAIL counts
            if state is not _READY or (bound is not None and self._mail_commands >= bound):
                return None
            self._mail_commands += 1
            kind = "mail"
        elif verb == b"RCPT":
            if state not in _TRANSACTION or len(self._recipients) >= self._rcpt_bound:
                return None
            kind = "rcpt"
        elif verb == b"DATA":
            mail = self._mail
            if state is not _RCPT or self._bdat_used or mail is None or mail.body == "BINARYMIME":
                return None
            kind = "data"
        elif state not in _ANY_COMMAND_STATE[verb]:
            return None
        else:
            kind = _BARE_KINDS[verb]
        self._verb = verb
        self._credentials_window = False  # a known verb closes it (§4 rule 11)
        self._pending, self._pending_event, self._replies_due = kind, event, 1  # _expect
        return event

    def _closed(self, clean: bool) -> ClientDisconnected:
        self._closed_clean = clean
        self._state = _CLOSED
        return ClientDisconnected(clean=clean)

    def _command(self, line: bytes) -> ServerEvent | None:
        if self._fast_path:
            event = self._plain_event(line)
            if event is not None:
                return event
        line = line.rstrip(b" \t")  # RFC 5321 §4.1.1: trailing white space is tolerated
        self._verb = line_verb(line)
        self._track_credentials(line)
        if b"\r" in line or b"\n" in line:
            return self._reject(
                syntax_error("Bare CR or LF in command line"),
                "bare CR or LF in a command line (RFC 5321 section 2.3.8)",
                line,
            )
        try:
            verb, args = split_verb(line)
        except SyntaxErrorInCommand as error:
            return self._reject_error(error, line, "rejected")
        hello_mismatch = verb in ("EHLO", "HELO", "LHLO") and (verb == "LHLO") != self.lmtp
        if verb not in ALLOWED or hello_mismatch:  # RFC 2033 §4.1: LHLO only in LMTP
            self.error_count += 1
            if self._credentials_window:  # the "verb" may be a base64 credential
                return self._expect("other", UnknownCommand(verb="<REDACTED>", line=REDACTED))
            return self._expect("other", UnknownCommand(verb=verb, line=line))
        if self._state not in ALLOWED[verb]:
            if verb == "BDAT":
                try:
                    return self._start_chunk(args, bad_sequence(sequence_reason(verb, self._state)))
                except SyntaxErrorInCommand:
                    pass
            return self._reject(
                bad_sequence(sequence_reason(verb, self._state)), f"{verb} out of sequence", line
            )
        try:
            return self._dispatch(verb, args, line)
        except SyntaxErrorInCommand as error:
            return self._reject_error(error, line, "rejected")

    def _text(self, args: bytes, what: str, *, required: bool) -> str:
        if required and not args:
            raise SyntaxErrorInCommand(f"{what} needs an argument", code=501)
        try:
            text = args.decode("utf-8" if "SMTPUTF8" in self._extensions else "ascii")
        except UnicodeDecodeError:
            raise SyntaxErrorInCommand(f"{what} argument is not ASCII", code=501) from None
        problem = _find_control(text)  # C0 is refused with the line; C1, U+2028/9 here
        if problem is not None:
            raise SyntaxErrorInCommand(f"{what} argument contains a {problem}", code=501)
        return text

    def _dispatch(self, verb: str, args: bytes, line: bytes) -> ServerEvent | None:
        if verb in ("DATA", "RSET", "QUIT", "STARTTLS") and args:
            raise SyntaxErrorInCommand(f"{verb} takes no argument", code=501)
        if verb in ("EHLO", "HELO", "LHLO"):
            if not args:
                raise SyntaxErrorInCommand(f"{verb} needs a domain or address literal")
            domain = parse_domain(args)
            if verb == "HELO":
                return self._expect("helo", HeloReceived(domain=domain))
            return self._expect("ehlo", EhloReceived(domain=domain, lmtp=verb == "LHLO"))
        if verb == "MAIL":
            # RFC 9422 §4.1: MAILMAX counts every MAIL command, accepted or not.
            self._mail_commands += 1
            if self._mail_bound is not None and self._mail_commands > self._mail_bound:
                reason = f"more than LIMITS MAILMAX={self._mail_bound} transactions"
                return self._reject(too_many_transactions(), reason, line)
            return self._expect(
                "mail", parse_mail(args, self._extensions, self.config.max_message_size)
            )
        if verb == "RCPT":
            if len(self._recipients) >= self._rcpt_bound:
                return self._reject(too_many_recipients(), "too many recipients", line)
            assert self._mail is not None
            return self._expect("rcpt", parse_rcpt(args, self._extensions, self._mail.smtputf8))
        if verb == "DATA":
            if self._bdat_used:
                return self._reject(bad_sequence("DATA after BDAT"), "DATA after BDAT", line)
            if self._mail is not None and self._mail.body == "BINARYMIME":
                reason = "BODY=BINARYMIME needs BDAT (RFC 3030 section 3)"
                return self._reject(bad_sequence(reason), reason, line)
            return self._expect("data", DataRequested())
        if verb == "BDAT":
            refusal = None if "CHUNKING" in self._extensions else not_implemented()
            return self._start_chunk(args, refusal)
        if verb == "STARTTLS":
            if self.tls_active:
                return self._reject(bad_sequence("TLS already active"), "TLS already active", line)
            if "STARTTLS" not in self._extensions:
                return self._reject(not_implemented(), "STARTTLS not advertised", line)
            return self._expect("starttls", StartTLSRequested())
        if verb == "AUTH":
            if "AUTH" not in self._extensions:
                reason = "AUTH not advertised"
                return self._reject(bad_sequence("Authentication not enabled"), reason, line)
            if self.authenticated:
                return self._reject(bad_sequence("Already authenticated"), "second AUTH", line)
            return self._expect("auth", parse_auth(args, self._extensions))
        if verb == "RSET":
            return self._expect("rset", ResetReceived())
        if verb == "QUIT":
            return self._expect("quit", QuitReceived())
        if verb == "NOOP":
            return self._expect("other", NoopReceived())
        if verb == "HELP":
            return self._expect("other", HelpReceived(topic=self._text(args, verb, required=False)))
        argument = self._text(args, verb, required=True)
        if verb == "VRFY":
            return self._expect("other", VrfyReceived(argument=argument))
        return self._expect("other", ExpnReceived(argument=argument))

    def _auth_line(self, line: bytes) -> ServerEvent:
        try:
            return self._expect("auth", decode_auth_response(line))
        except SyntaxErrorInCommand as error:
            return self._reject_error(error, b"", "auth")

    # -- content -----------------------------------------------------------------------

    def _start_content(self) -> None:
        """A message's content begins (the 354, or its first BDAT chunk)."""
        self._message_size = 0
        self._too_large = False
        self._size_limit = self._content_limit

    def _account(self, data: bytes) -> ContentReceived | None:
        self._message_size += len(data)
        limit = self._size_limit
        if limit is not None and self._message_size > limit:
            self._too_large = True  # RFC 1870 §6.2: read to the end, then refuse with 552
        if self._too_large or not data:
            return None
        return _content_received(False, data)

    def _end_of_message(self, bdat: bool) -> ServerEvent:
        replies = len(self._recipients) if self.lmtp else 1
        early, self._content_early = self._content_early, False
        if self._too_large:
            refused = self._reject(
                message_too_large(), "message too large", kind="message", n=replies
            )
            return self._flag(refused, early)
        assert self._mail is not None
        event = _message_complete(
            early,  # unauthorized_pipelining
            self._mail.sender,
            tuple(self._recipients),
            self._message_size,
            bdat,
            0 if bdat or self._decoder is None else self._decoder.bare_line_endings,
        )
        return self._expect("message", event, replies)

    def _data_event(self) -> ServerEvent | None:
        if self._message_done:
            self._message_done = False
            self._state = _RCPT
            return self._end_of_message(bdat=False)
        if not self._buf:
            return None
        assert self._decoder is not None
        data = bytes(self._buf)
        self._buf.clear()
        content, done = self._decoder.feed(data)
        if done:
            self._buf += self._decoder.leftover
            self._message_done = True
        event = self._account(content)
        return event if event is not None else self._data_event()

    def _start_chunk(self, args: bytes, refusal: Reply | None) -> ServerEvent | None:
        size, last = parse_bdat(args)
        self._chunk_left = self._chunk_size = size
        self._chunk_last = last
        self._chunk_refusal = refusal
        self._chunk_return = self._state
        self._state = _BDAT
        if refusal is None:
            if not self._bdat_used:
                self._start_content()
            self._bdat_used = True
            return BdatStarted(size=size, last=last)
        return self._bdat_event()  # a refused chunk is consumed silently first

    def _bdat_event(self) -> ServerEvent | None:
        while self._chunk_left and self._buf:
            take = min(self._chunk_left, len(self._buf))
            data = bytes(self._buf[:take])
            del self._buf[:take]
            self._chunk_left -= take
            if self._chunk_refusal is None:
                event = self._account(data)
                if event is not None:
                    return event
        if self._chunk_left:
            return None
        self._state = self._chunk_return
        refusal = self._chunk_refusal
        if refusal is not None:  # out of sequence or not advertised: no state change
            return self._reject(refusal, "BDAT refused")
        if self._chunk_last:
            return self._end_of_message(bdat=True)
        if self._too_large:
            return self._reject(message_too_large(), "message too large", kind="chunk_failed")
        return self._expect("chunk", ChunkComplete(size=self._chunk_size))
