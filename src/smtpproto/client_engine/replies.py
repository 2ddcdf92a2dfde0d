"""The reply rules: what each reply from the server means for the ``Session``.

Theory of operation: ``ClientConnection.next_event`` hands the parsed replies to
``handle_replies``, which takes them in order until one makes an event. Each goes to
``handle_reply`` (or, for a transaction of the fast lane, to the group step, which does
the same without its dispatch): it is matched with the oldest ``Pending`` entry (RFC
2920 §3.1: replies come in command order), recorded in the entry's transaction, the
state moves (``Session.enter``, from the ``ON_OUTCOME`` table) and events are
appended. A reply with nothing outstanding is an error unless it is a 421 (RFC 5321
§3.8). Every 421 also ends the session: unanswered commands never will be, so their
transactions are reported with the 421 filled in, then ``ServiceClosing``.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable

from ..wire.datacodec import content_encoder
from ..wire.errors import LocalProtocolError, RemoteProtocolError
from ..wire.reply import Reply
from ..wire.twins import slot_filler
from .capabilities import parse_ehlo
from .config import TLSPolicy
from .events import (
    AuthChallenge,
    AuthFailed,
    AuthSucceeded,
    CommandReply,
    ConnectionClosed,
    DeliveryStatusUnknown,
    Ehlo,
    EhloAccepted,
    Greeting,
    GreetingRefused,
    HelloRefused,
    Helo,
    HeloAccepted,
    Lhlo,
    NoRecipientsAccepted,
    ReadyForContent,
    ServiceClosing,
    StartTLSRefused,
    TLSReady,
    TLSUnavailable,
    positional,
)
from .session import Pending, Session
from .states import FINAL_VERBS, ClientState, Outcome, Verb

__all__ = ["handle_eof", "handle_replies", "handle_reply"]

S = ClientState
V = Verb
#: A module constant: an enum member's look-up costs about 60 ns on CPython 3.10-3.12
#: (``connection``), and every message enters this outcome.
_CONTENT_WANTED = Outcome.CONTENT_WANTED
_MAIL = V.MAIL
_RCPT = V.RCPT
_DATA = V.DATA
_END_OF_CONTENT = V.END_OF_CONTENT
_BDAT_LAST = V.BDAT_LAST


# Hot-path constructors (positional, field order); same values as the keyword forms,
# made by the selected ``slot_filler`` twin.
_greeting = positional(Greeting, slot_filler)
_command_reply = positional(CommandReply, slot_filler)
_ehlo_accepted = positional(EhloAccepted, slot_filler)
_ready_for_content = positional(ReadyForContent, slot_filler)


def handle_eof(s: Session) -> None:
    """The server closed the connection: CLOSED, and what that means for the replies
    still due (RFC 1047: an unanswered end of content leaves the delivery unknown)."""
    s.parser.feed_eof()
    pending = s.pending
    final = [entry for entry in pending if entry.verb in FINAL_VERBS]
    if final and final[0].txn is not None:
        txn = final[0].txn
        answered = {address for address, _ in txn.lmtp_replies}
        s.events.append(
            DeliveryStatusUnknown(
                sender=txn.mail.sender,
                recipients=tuple(a for a in txn.not_refused() if a not in answered),
                reason="the connection closed before the reply to the end of the content",
            )
        )
    elif pending and pending[0].verb is not V.QUIT:
        what = "the greeting" if pending[0].verb is None else f"{len(pending)} command(s)"
        raise RemoteProtocolError(f"connection closed while waiting for a reply to {what}")
    pending.clear()
    s.enter(Outcome.EOF)
    s.events.append(ConnectionClosed())


def handle_replies(s: Session, replies: list[Reply]) -> None:
    """Take replies from the front of ``replies`` and handle each as ``handle_reply``
    does, until one produced an event or none is left (``next_event`` returns that
    event first: a reply after it is handled only when it is asked for).

    The group step (docs/design.md §2, the fast lane): a reply other than 421 to an
    entry of a transaction the fast lane opened (``Transaction.group``: MAIL, RCPT,
    DATA, the end of the content or BDAT LAST, in SMTP), with no ``CommandReply``
    events asked for, goes straight to its handler — for a 2xx to MAIL, its whole
    effect is inline — without ``handle_reply``'s dispatch: matched with the oldest
    entry (RFC 2920 §3.1), its class digit checked by the handler (RFC 5321 §4.2.1; a
    2xx to DATA refused), the same events and state. A 421 (``_service_closing`` after
    the handler), a reply to any other entry, LMTP's final replies go to
    ``handle_reply``. ``tests/test_fastlane_group_replies.py`` and
    ``tests/test_fastlane.py`` hold the two paths to the same events, state and errors.
    """
    pending = s.pending
    events = s.events
    group_step = not s.command_replies  # no handler here changes it
    while replies:
        reply = replies.pop(0)
        if group_step and pending and reply.code != 421:
            entry = pending[0]
            txn = entry.txn
            if txn is not None and txn.group and entry.remaining == 1:
                verb = entry.verb
                if verb is _RCPT:
                    pending.popleft()
                    txn.record_rcpt(entry.index, reply)  # all ``_rcpt_reply`` does here
                    continue
                if verb is _MAIL:
                    pending.popleft()
                    if reply.code // 100 == 2:
                        txn.mail_reply = reply  # all ``_mail_reply`` does for a 2xx
                    else:
                        _mail_reply(s, entry, reply)
                    if events:
                        return
                    continue
                if verb is _DATA:
                    pending.popleft()
                    _data_reply(s, entry, reply)  # a 354's event, or raises, or refused
                    return
                if (verb is _END_OF_CONTENT or verb is _BDAT_LAST) and not s.config.lmtp:
                    _final_reply(s, entry, reply)  # SMTP: one reply, one result
                    return
        handle_reply(s, reply)
        if events:
            return


def handle_reply(s: Session, reply: Reply) -> None:
    """One complete reply, matched with the oldest command due (RFC 2920 §3.1)."""
    pending = s.pending
    if not pending:
        if reply.code == 421:
            _service_closing(s, reply)
            return
        raise RemoteProtocolError(f"unsolicited reply with no command outstanding: {reply!r}")
    entry = pending[0]
    verb = entry.verb
    if verb in FINAL_VERBS:
        _final_reply(s, entry, reply)
    else:
        if entry.remaining is not None and entry.remaining > 1:
            entry.remaining -= 1
        else:
            pending.popleft()
        _REPLY_HANDLERS[verb](s, entry, reply)
    if reply.code == 421 and s.state is not S.ERROR:
        _service_closing(s, reply)


def _service_closing(s: Session, reply: Reply) -> None:
    """421 (RFC 5321 §3.8): unanswered commands never will be; finish transactions."""
    for entry in s.pending:
        txn = entry.txn
        if txn is not None and not txn.finished:
            s.events.append(txn.result(fill=reply))
    if s.txn is not None and not s.txn.finished:
        s.events.append(s.txn.result(fill=reply))
    s.txn = None
    s.pending.clear()
    s.events.append(ServiceClosing(reply=reply))
    s.enter(Outcome.SERVICE_CLOSING)


def _greeting_reply(s: Session, entry: Pending, reply: Reply) -> None:
    if reply.code == 220:
        s.enter(Outcome.GREETED)
        s.events.append(_greeting(reply))
    else:
        s.enter(Outcome.GREETING_REFUSED)
        s.events.append(GreetingRefused(reply=reply))


def _mail_reply(s: Session, entry: Pending, reply: Reply) -> None:
    txn = entry.txn
    assert txn is not None
    txn.mail_reply = reply
    if s.command_replies:
        s.events.append(_command_reply(txn.mail, reply))
    if reply.code // 100 != 2 and txn is s.txn and txn.commands_after_mail == 0:
        s.txn = None
        s.enter(Outcome.MAIL_REFUSED)
        s.events.append(txn.result())


def _rcpt_reply(s: Session, entry: Pending, reply: Reply) -> None:
    txn = entry.txn
    assert txn is not None and entry.command is not None
    txn.record_rcpt(entry.index, reply)
    if s.command_replies:
        s.events.append(_command_reply(entry.command, reply))


def _bdat_reply(s: Session, entry: Pending, reply: Reply) -> None:
    txn = entry.txn
    assert txn is not None and entry.command is not None
    if reply.code // 100 != 2 and txn.data_reply is None:
        txn.data_reply = reply
    if s.command_replies:
        s.events.append(_command_reply(entry.command, reply))


def _other_reply(s: Session, entry: Pending, reply: Reply) -> None:
    """RSET, NOOP, VRFY, EXPN, HELP, QUIT and raw bytes."""
    assert entry.command is not None
    s.events.append(_command_reply(entry.command, reply))
    txn = entry.txn
    verb = entry.verb
    if verb is V.RSET and txn is not None and not txn.finished:
        s.events.append(txn.result())
    elif verb is V.QUIT:
        s.enter(Outcome.QUIT_ANSWERED)


def _xclient_reply(s: Session, entry: Pending, reply: Reply) -> None:
    """220 to XCLIENT is a new greeting (Postfix XCLIENT_README): everything learnt
    from EHLO is forgotten and a new hello is needed; any other reply changes nothing."""
    assert entry.command is not None
    if reply.code == 220:
        s.forget_extensions()
        s.txn = None
        s.enter(Outcome.XCLIENT_GREETED)
    s.events.append(_command_reply(entry.command, reply))


def _hello_reply(s: Session, entry: Pending, reply: Reply) -> None:
    command = entry.command
    verb = entry.verb
    assert verb is not None
    assert isinstance(command, (Ehlo, Helo, Lhlo))
    required = s.config.tls_policy is TLSPolicy.REQUIRED and not s.tls_active
    if reply.code == 250 and isinstance(command, Helo):
        s.enter(Outcome.HELLO_ACCEPTED)
        s.events.append(HeloAccepted(reply=reply))
        return
    if reply.code == 250:
        assert isinstance(command, (Ehlo, Lhlo))
        # The reply as well: the event holds the interned one, so this one is freed.
        caps, s.pipelining, s.rcptmax, reply = parse_ehlo(s.config.mask_extensions, reply)
        s.caps = caps
        s.mailmax = caps.limits.mailmax if caps.has("LIMITS") else None  # RFC 9422 §4.1
        s.enter(Outcome.HELLO_ACCEPTED)
        s.events.append(_ehlo_accepted(command, reply, caps))
        if required and not caps.starttls:
            _tls_unavailable(s, "the server does not advertise STARTTLS", reply)
        return
    not_supported = verb is V.EHLO and reply.code in (500, 502)
    s.enter(Outcome.HELLO_REFUSED)
    s.events.append(
        HelloRefused(command=command, reply=reply, helo_fallback=not_supported and not required)
    )
    if not_supported and required:
        _tls_unavailable(s, "EHLO is not supported, so STARTTLS is not either", reply)


def _tls_unavailable(s: Session, reason: str, reply: Reply) -> None:
    s.enter(Outcome.TLS_UNAVAILABLE)
    s.events.append(TLSUnavailable(reason=f"TLS is required but {reason}", reply=reply))


def _starttls_reply(s: Session, entry: Pending, reply: Reply) -> None:
    if reply.code == 220:
        parser = s.parser
        if s.replies or parser.buffered or parser.failed or s.incoming:
            raise RemoteProtocolError(
                "server sent data after the STARTTLS 220 reply (RFC 3207 §4: possible "
                "command injection); it is never parsed"
            )
        s.enter(Outcome.TLS_READY)
        s.events.append(TLSReady(reply=reply))
        return
    s.enter(Outcome.STARTTLS_REFUSED)
    s.events.append(StartTLSRefused(reply=reply))
    if s.config.tls_policy is TLSPolicy.REQUIRED:
        _tls_unavailable(s, "STARTTLS was refused", reply)


def _auth_reply(s: Session, entry: Pending, reply: Reply) -> None:
    mechanism = s.mechanism
    if reply.code == 334:
        if s.auth_cancelled:
            # RFC 4954 §4: the server MUST reject a "*" with 501. Answering another
            # challenge could hand over credentials the client meant to withhold.
            raise RemoteProtocolError(
                "server keeps challenging after AUTH was cancelled with '*' "
                "(RFC 4954 §4 requires a 501 reply)"
            )
        s.auth_rounds += 1
        text = reply.raw_lines[0].strip()
        shown = True
        try:
            challenge: bytes | None = binascii.a2b_base64(text) if text else b""
            if challenge and binascii.b2a_base64(challenge, newline=False) != text:
                challenge = None  # not canonical base64 (stray characters)
            elif challenge and s.redactor.contains_secret(challenge, any_case=True):
                shown = False  # no event shows a secret, in any case (§4 rule 11)
                sends = mechanism is None or mechanism.sends_secrets
                if sends and s.redactor.contains_secret(challenge):
                    challenge = None  # the server echoes a secret: answer "*"
        except (binascii.Error, ValueError):
            challenge = None
        s.challenge = challenge
        s.enter(Outcome.AUTH_CHALLENGED)
        shown_reply = s.redactor.reply(reply)  # the connection passed it unredacted
        s.events.append(AuthChallenge(reply=shown_reply, challenge=challenge if shown else None))
        return
    if reply.code == 235 and s.auth_cancelled:
        # RFC 4954 §4: a "*" MUST be answered 501; success would report as
        # authenticated an exchange the client abandoned (an undecodable challenge,
        # the mechanism failing its check).
        raise RemoteProtocolError(
            "server accepted AUTH after it was cancelled with '*' "
            "(RFC 4954 §4 requires a 501 reply)"
        )
    s.mechanism = None
    s.auth_initial = None
    s.enter(Outcome.AUTH_ENDED)
    if reply.code == 235:
        assert mechanism is not None
        try:
            mechanism.finish()
        except LocalProtocolError as error:  # SASLError: the server failed to prove itself
            raise RemoteProtocolError(
                f"server accepted AUTH but failed the mechanism's check: {error}"
            ) from None
        s.authenticated = True
        s.events.append(AuthSucceeded(reply=reply))
    else:
        s.events.append(AuthFailed(reply=reply))


def _data_reply(s: Session, entry: Pending, reply: Reply) -> None:
    txn = entry.txn
    assert txn is not None
    if reply.code // 100 == 2:
        raise RemoteProtocolError(
            f"server answered DATA with {reply.code}, not 354: no content was sent, so "
            "the message cannot have been accepted (RFC 5321 §4.1.1.4)"
        )
    if reply.code // 100 == 3:  # 354; the class digit decides (RFC 5321 §4.2.1)
        if txn.accepted():
            body = txn.mail.body
            s.raw = None  # a new message: raw only once ``RawContent`` is sent
            # One encoder per connection and kind, reset per message: the last
            # message's content has ended (its end was sent, or the connection was
            # reset by a new hello), so nothing else holds it.
            eight = body == "8BITMIME"
            spare = s.spare_encoder
            if spare is not None and spare[0] is eight:
                encoder = spare[1]
                assert s.encoder is not encoder
                encoder.reset()
            else:
                config = s.config
                encoder = content_encoder(
                    body,
                    enforce_line_length=config.enforce_line_length,
                    allow_nul=config.allow_nul,
                )
                s.spare_encoder = (eight, encoder)
            s.encoder = encoder
            s.enter(_CONTENT_WANTED)
            s.events.append(_ready_for_content(reply))
        else:
            s.enter(Outcome.CONTENT_UNWANTED)
            s.events.append(NoRecipientsAccepted(reply=reply))
        return
    txn.data_reply = reply
    s.txn = None
    s.enter(Outcome.DATA_REFUSED)
    s.events.append(txn.result())


def _final_reply(s: Session, entry: Pending, reply: Reply) -> None:
    """A reply to the end of the content or BDAT LAST; LMTP expects one per accepted
    recipient (RFC 2033 §4.2), counted at the first reply (all RCPT replies precede it
    in the FIFO)."""
    txn = entry.txn
    assert txn is not None
    if not s.config.lmtp:  # SMTP: one reply (RFC 5321 §4.1.1.4), the common case short
        if txn.data_reply is None or entry.verb is _END_OF_CONTENT:
            txn.data_reply = reply
        s.pending.popleft()
        if s.txn is txn:
            s.txn = None
        s.events.append(txn.result())
        return
    # After a failed BDAT chunk the server has dropped the message and answers the
    # LAST chunk once (RFC 3030 §2), not once per recipient.
    lmtp = not (entry.verb is V.BDAT_LAST and txn.data_reply is not None)
    accepted = txn.accepted() if lmtp else []
    if entry.remaining is None:
        entry.remaining = max(1, len(accepted))
    if accepted:
        index = len(txn.lmtp_replies)
        if reply.code == 421:  # the rest will never come
            txn.lmtp_replies.extend((address, reply) for address in accepted[index:])
            entry.remaining = 1
        else:
            txn.lmtp_replies.append((accepted[index], reply))
    elif txn.data_reply is None or entry.verb is V.END_OF_CONTENT:
        txn.data_reply = reply
    entry.remaining -= 1
    if entry.remaining == 0:
        s.pending.popleft()
        if s.txn is txn:
            s.txn = None
        s.events.append(txn.result())


_Handler = Callable[[Session, Pending, Reply], None]
#: What handles the reply to each verb (None: the greeting). The end of the content
#: and BDAT LAST go to ``_final_reply``, which may expect several replies (LMTP).
_REPLY_HANDLERS: dict[Verb | None, _Handler] = {
    None: _greeting_reply,
    V.MAIL: _mail_reply,
    V.RCPT: _rcpt_reply,
    V.DATA: _data_reply,
    V.BDAT: _bdat_reply,
    V.EHLO: _hello_reply,
    V.HELO: _hello_reply,
    V.LHLO: _hello_reply,
    V.STARTTLS: _starttls_reply,
    V.AUTH: _auth_reply,
    V.AUTH_CONTINUE: _auth_reply,
    V.XCLIENT: _xclient_reply,
    **{
        verb: _other_reply
        for verb in (V.RSET, V.NOOP, V.VRFY, V.EXPN, V.HELP, V.QUIT, V.RAW, V.XFORWARD)
    },
}
