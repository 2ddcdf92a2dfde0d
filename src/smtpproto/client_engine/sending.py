"""The send rules: whether a command may go out now, and its exact bytes.

Theory of operation: ``ClientConnection.send`` maps the command to its ``Verb``
(``VERBS``), checks it against ``ALLOWED`` and the pipelining rules
(``check_pipelining``, RFC 2920 §3.1), then calls the verb's sender in ``SENDERS``.
A sender checks what depends on the session (extensions advertised, TLS policy,
recipients accepted), queues the ``Pending`` entries for the replies it expects,
writes the transcript and returns the bytes; it raises ``LocalProtocolError`` before
changing anything when the command is not allowed. The state moves afterwards, in
``send``, from ``AFTER_SEND``.

The pipelined fast lane (``send_many``'s templates) is ``fastlane``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..wire.errors import LocalProtocolError
from ..wire.rawdata import RawDataGuard
from .config import TLSPolicy, require_tls_if_policy
from .events import (
    Auth,
    AuthContinue,
    Bdat,
    Command,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    RawContent,
    Rcpt,
    Rset,
    StartTLS,
    UnsafeRawBytes,
    Vrfy,
    Xclient,
    Xforward,
)
from .proxy import ProxyHeader
from .session import Pending, Session, Transaction
from .states import AFTER_CONTENT_END, FINAL_VERBS, GROUP_ENDERS, ClientState, Verb
from .writers import bdat_header, write_auth, write_auth_response, write_mail, write_rcpt

__all__ = [
    "NOT_COMMANDS",
    "SENDERS",
    "VERBS",
    "check_pipelining",
]

S = ClientState
V = Verb
# The members the per-message senders test, as module constants: an enum member read
# off its class costs about 60-85 ns on CPython 3.10-3.12, a global about 10
# (``connection``).
_CONTENT = S.CONTENT
_DATA = V.DATA
_BDAT_LAST = V.BDAT_LAST
_STARTTLS = V.STARTTLS
_RSET = V.RSET
_QUIT = V.QUIT

#: The verb of each command class (``Bdat`` is BDAT or BDAT_LAST by its ``last``).
VERBS: dict[type[Command], Verb] = {
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
    RawContent: V.RAW_CONTENT,
    EndOfContent: V.END_OF_CONTENT,
    Bdat: V.BDAT,
    Rset: V.RSET,
    Noop: V.NOOP,
    Vrfy: V.VRFY,
    Expn: V.EXPN,
    Help: V.HELP,
    Quit: V.QUIT,
    UnsafeRawBytes: V.RAW,
    Xclient: V.XCLIENT,
    Xforward: V.XFORWARD,
    ProxyHeader: V.PROXY,
}
_FIXED_WIRE = {
    V.STARTTLS: b"STARTTLS\r\n",
    V.RSET: b"RSET\r\n",
    V.NOOP: b"NOOP\r\n",
    V.QUIT: b"QUIT\r\n",
}
#: Verbs that do not wait for the previous reply: they are not commands on their own.
NOT_COMMANDS = frozenset(
    {V.CONTENT, V.RAW_CONTENT, V.END_OF_CONTENT, V.AUTH_CONTINUE, V.RAW, V.PROXY}
)


def check_pipelining(s: Session, command: Command) -> None:
    """A command while replies are due: RFC 2920 §3.1 decides."""
    last = s.pending[-1].verb
    if not s.pipelining:
        raise LocalProtocolError(
            f"{type(command).__name__} sent before the previous reply, and the "
            "server does not advertise PIPELINING (RFC 2920)"
        )
    if (
        last in GROUP_ENDERS
        or last is None
        or (last in FINAL_VERBS and VERBS[type(command)] not in AFTER_CONTENT_END)
    ):
        what = "the greeting" if last is None else last.value
        raise LocalProtocolError(
            f"{type(command).__name__} cannot be pipelined after {what}: "
            "wait for its reply (RFC 2920 §3.1)"
        )


def _send_content(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    assert isinstance(command, Content) and s.encoder is not None
    if s.raw is not None:
        raise LocalProtocolError("Content after RawContent: raw and normal content do not mix")
    wire = s.encoder.feed(command.data)
    if s.transcript is not None:
        s.transcript.content(wire)
    return wire


def _send_raw_content(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    """``RawContent``: the octets as given, refused if they would end the DATA early
    (``wire.rawdata``)."""
    assert isinstance(command, RawContent) and s.encoder is not None
    if s.raw is None:
        if s.encoder.octets_in:
            raise LocalProtocolError("RawContent after Content: raw and normal content do not mix")
        s.raw = RawDataGuard()
    wire = s.raw.feed(bytes(command.data))
    if s.transcript is not None:
        s.transcript.content(wire)
    return wire


def _send_end(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    txn = s.txn
    assert txn is not None
    if state is _CONTENT and s.raw is not None:
        wire = s.raw.end()
        if s.transcript is not None:
            s.transcript.content(wire[:-3])
    elif state is _CONTENT:
        assert s.encoder is not None
        wire = s.encoder.finish()
        if s.transcript is not None:
            s.transcript.content(wire[:-3])
    else:
        wire = b".\r\n"
    s.encoder = None
    s.raw = None
    remaining = None if s.config.lmtp else 1
    s.pending.append(Pending(verb, command, txn, remaining=remaining))
    if s.transcript is not None:
        s.transcript.line("C", b".")
    return wire


def _send_rcpt(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    txn = s.txn
    assert isinstance(command, Rcpt) and txn is not None
    recipients = txn.recipients
    wire = write_rcpt(
        command, s.caps, smtputf8=txn.mail.smtputf8, count=len(recipients), rcptmax=s.rcptmax
    )
    index = txn.add_recipient(command.recipient)
    s.pending.append(Pending(verb, command, txn, index=index))
    if s.transcript is not None:
        s.transcript.wire(wire)
    return wire


def _send_mail(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    assert isinstance(command, Mail)
    require_tls_if_policy(s.config, s.tls_active, "MAIL")
    wire = write_mail(command, s.caps, tls_active=s.tls_active)
    if s.mail_budget() == 0:
        raise _past_mailmax(s)
    s.mails_sent += 1
    s.txn = txn = Transaction(command)
    s.pending.append(Pending(verb, command, txn))
    if s.transcript is not None:
        s.transcript.wire(wire)
    return wire


def _past_mailmax(s: Session) -> LocalProtocolError:
    """The refusal of a MAIL past the server's LIMITS MAILMAX (RFC 9422 §4.1)."""
    return LocalProtocolError(
        f"the server's LIMITS MAILMAX is {s.mailmax} and this session has "
        f"sent {s.mails_sent} MAIL commands (RFC 9422 §4.1): send the next message on a "
        "new connection"
    )


def _send_raw(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    assert isinstance(command, UnsafeRawBytes)
    if not s.config.allow_unsafe_raw:
        raise LocalProtocolError(
            "UnsafeRawBytes needs ClientConfig(allow_unsafe_raw=True); it is for testing"
        )
    s.preface_closed = True  # a PROXY header can no longer be first
    if command.expected_replies:
        remaining = command.expected_replies
        s.pending.append(Pending(verb, command, remaining=remaining))
    wire = bytes(command.data)
    if s.transcript is not None:
        s.transcript.wire(wire)
    return wire


def _send_proxy(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    """The PROXY header (HAProxy doc/proxy-protocol.txt §2): the very first bytes of the
    connection, once; no reply."""
    assert isinstance(command, ProxyHeader)
    if s.preface_closed:
        raise LocalProtocolError("the PROXY header must be the first bytes of the connection")
    s.preface_closed = True
    if s.transcript is not None:
        s.transcript.line("C", command.describe().encode("ascii", "backslashreplace"))
    return command.to_bytes()


def _simple_command(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    if verb is _STARTTLS:
        policy = s.config.tls_policy
        if policy is TLSPolicy.NONE or s.tls_active:
            raise LocalProtocolError(
                "STARTTLS refused: TLS is already active"
                if s.tls_active
                else "STARTTLS refused: the TLS policy is NONE"
            )
        if s.caps is None or not s.caps.starttls:
            raise LocalProtocolError("STARTTLS needs the STARTTLS extension, not advertised")
    txn = None
    if verb is _RSET:
        txn, s.txn = s.txn, None
    elif verb is _QUIT:
        s.txn = None
    s.pending.append(Pending(verb, command, txn))
    if s.transcript is not None:
        s.transcript.wire(_FIXED_WIRE[verb])
    return _FIXED_WIRE[verb]


def _hello_or_text(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    lmtp = s.config.lmtp
    if verb is V.LHLO and not lmtp:
        raise LocalProtocolError("LHLO is for LMTP: use ClientConfig(lmtp=True)")
    if (verb is V.EHLO or verb is V.HELO) and lmtp:
        raise LocalProtocolError("an LMTP session opens with Lhlo (RFC 2033 §4.1)")
    if verb is V.HELO and s.config.tls_policy is TLSPolicy.REQUIRED and not s.tls_active:
        raise LocalProtocolError("HELO would rule out STARTTLS, which the policy requires")
    if verb in (V.EHLO, V.HELO, V.LHLO):
        s.forget_extensions()  # RFC 5321 §4.1.4: a new hello resets the session
        s.txn = None
        s.encoder = None
        s.raw = None
    assert isinstance(command, (Ehlo, Helo, Lhlo, Vrfy, Expn, Help))
    s.pending.append(Pending(verb, command))
    if s.transcript is not None:
        s.transcript.wire(command._wire)
    return command._wire


def _send_attributes(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    """XCLIENT / XFORWARD: only when advertised with every attribute name (Postfix
    XCLIENT_README, XFORWARD_README); ``Xclient(require_advertised=False)``: only
    XCLIENT itself."""
    assert isinstance(command, (Xclient, Xforward))
    keyword = verb.value
    if s.caps is None or not s.caps.has(keyword):
        raise LocalProtocolError(f"{keyword} needs the {keyword} extension, not advertised")
    offered = {name.upper() for name in s.caps.params(keyword)}
    missing: list[str] = []
    if not isinstance(command, Xclient) or command.require_advertised:
        missing = sorted(name.upper() for name in command.attributes if name.upper() not in offered)
    if missing:
        raise LocalProtocolError(
            f"the server does not advertise {keyword} attribute(s) {' '.join(missing)}"
        )
    s.pending.append(Pending(verb, command))
    if s.transcript is not None:
        s.transcript.wire(command._wire)
    return command._wire


def _data_command(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    txn = s.txn
    assert txn is not None
    if not txn.recipients:
        raise LocalProtocolError("no RCPT was sent in this transaction (RFC 5321 §3.3)")
    body = txn.mail.body
    if verb is _DATA:
        if body == "BINARYMIME":
            raise LocalProtocolError("BODY=BINARYMIME content must be sent with BDAT")
        txn.commands_after_mail += 1
        s.pending.append(Pending(verb, command, txn))
        if s.transcript is not None:
            s.transcript.line("C", b"DATA")
        return b"DATA\r\n"
    assert isinstance(command, Bdat)
    if s.caps is None or not s.caps.chunking:
        raise LocalProtocolError("BDAT needs the CHUNKING extension, not advertised")
    data = command.data if type(command.data) is bytes else bytes(command.data)
    if body not in ("8BITMIME", "BINARYMIME") and not data.isascii():
        raise LocalProtocolError(
            "8-bit content needs Mail(body='8BITMIME') or 'BINARYMIME' (RFC 6152, RFC 3030), "
            "which the server must advertise"
        )
    remaining = None if verb is _BDAT_LAST and s.config.lmtp else 1
    txn.commands_after_mail += 1
    s.pending.append(Pending(verb, command, txn, remaining=remaining))
    header = bdat_header(len(data), verb is _BDAT_LAST)
    if s.transcript is not None:
        s.transcript.line("C", header[:-2])
        s.transcript.content(data, verbatim_ok=False)
    return header + data


def _auth_command(s: Session, command: Command, verb: Verb, state: ClientState) -> bytes:
    """AUTH and the responses to its challenges (RFC 4954 §4); lines are redacted."""
    config = s.config
    if verb is V.AUTH:
        assert isinstance(command, Auth)
        require_tls_if_policy(s.config, s.tls_active, "AUTH")
        if not s.tls_active and not config.allow_cleartext_auth:
            raise LocalProtocolError(
                "AUTH over cleartext is refused; use TLS or ClientConfig(allow_cleartext_auth=True)"
            )
        if s.authenticated:
            raise LocalProtocolError("already authenticated (RFC 4954 §4)")
        mechanism = command.mechanism
        name = mechanism.name
        if s.caps is None or name not in s.caps.auth_mechanisms:
            raise LocalProtocolError(f"the server does not advertise AUTH {name}")
        initial = mechanism.initial_response()
        wire, on_line = write_auth(name, initial)
        s.mechanism = mechanism
        s.learn_secrets(mechanism.secrets)
        s.auth_rounds = 0
        s.auth_cancelled = False
        s.auth_initial = None if on_line else initial
        s.pending.append(Pending(verb, command))
        if s.transcript is not None:
            s.transcript.line("C", b"AUTH " + name.encode() + (b" <redacted>" if on_line else b""))
        return wire
    response = None if s.auth_cancelled else _auth_response(s)
    s.auth_cancelled = response is None
    wire = write_auth_response(response)
    s.pending.append(Pending(verb, command))
    if s.transcript is not None:
        s.transcript.line("C", b"*" if response is None else b"<redacted>")
    return wire


def _auth_response(s: Session) -> bytes | None:
    """What to answer the pending challenge with; None means cancel (``*``)."""
    challenge = s.challenge
    if s.auth_rounds > s.config.max_auth_rounds or challenge is None:
        return None
    if s.auth_initial is not None:
        initial, s.auth_initial = s.auth_initial, None
        return initial if challenge == b"" else None
    assert s.mechanism is not None
    try:
        return s.mechanism.respond(challenge)
    except LocalProtocolError:  # SASLError: the mechanism cannot answer; cancel
        return None


_Sender = Callable[[Session, Command, Verb, ClientState], bytes]
#: How each verb is turned into bytes (every sender queues the replies it expects).
SENDERS: dict[Verb, _Sender] = {
    V.CONTENT: _send_content,
    V.RAW_CONTENT: _send_raw_content,
    V.END_OF_CONTENT: _send_end,
    V.RCPT: _send_rcpt,
    V.MAIL: _send_mail,
    V.DATA: _data_command,
    V.BDAT: _data_command,
    V.BDAT_LAST: _data_command,
    V.AUTH: _auth_command,
    V.AUTH_CONTINUE: _auth_command,
    V.RAW: _send_raw,
    V.PROXY: _send_proxy,
    V.XCLIENT: _send_attributes,
    V.XFORWARD: _send_attributes,
    **{verb: _simple_command for verb in _FIXED_WIRE},
    **{verb: _hello_or_text for verb in (V.EHLO, V.HELO, V.LHLO, V.VRFY, V.EXPN, V.HELP)},
}
