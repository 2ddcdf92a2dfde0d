"""The built-in server's reply policy, ``Backend`` and ``Session``: no transport, no loop.

Theory of operation. As in go-smtp, where a ``Backend`` makes one ``Session`` per
connection and the connection code only moves bytes, the work is split in two:

- a *front end* owns the transport: it reads octets into a ``ServerConnection``, writes
  what ``ServerConnection.send`` returns, runs the idle timer, starts TLS and closes
  (``SMTPServer`` does this on asyncio; a trio server or a scripted test server would
  do the same with its own I/O);
- the *policy* decides every reply. ``Backend`` holds what all connections of a server
  share (host name, users and mechanisms for AUTH, where messages go) and makes one
  ``Session`` per connection; the ``Session`` keeps that connection's state (the
  content of the message being received, the AUTH exchange) and answers each event.

The loop of any front end::

    conn = ServerConnection(lmtp=..., config=...)
    session = backend.new_session(conn, starttls=can_do_tls, note=log, peer=client_ip)
    response = session.opening()        # the greeting, unless a rule said otherwise
    # on every read: conn.receive_data(octets), then until NEED_DATA or PAUSED:
    event = conn.next_event()
    response = session.respond(event)
    # carry a response out: wait response.delay seconds (not reading meanwhile), then
    for reply in response.replies:
        write(conn.send(reply))
    if response.close:
        ...  # close (no replies and close: a drop)
    elif isinstance(event, StartTLSRequested) and conn.state is ServerState.TLS_HANDSHAKE:
        ...  # handshake, then conn.tls_established()
    elif isinstance(event, (QuitReceived, ClientDisconnected)):
        ...  # close
    # on idle timeout: write(conn.send(session.idle_timeout())), close
    # on ProtocolError: write(conn.send(session.protocol_error(error))), close

``respond(event).replies`` is empty for events that expect no reply, and holds
``conn.replies_due`` replies otherwise, unless the connection is to close (LMTP
answers a message once per recipient, RFC 2033 §4.2). The engine checks every reply
against the command (a code the command cannot have is ``LocalProtocolError``) and
takes its next state from it: a refused MAIL opens no transaction, a refused RCPT adds
no recipient.

Before the hooks, ``respond`` asks ``decide(context)``: the backend's rules
(``rules.py``: refuse, greylist, delay, tarpit, 421 and close, drop), then its ``hook``.

Writing your own policy: subclass ``Session`` and override the hook for the command, one
method per event (``ehlo``, ``helo``, ``mail``, ``rcpt``, ``data``, ``chunk``,
``message``, ``auth``, ``start_tls``, ``quit``, ``reset``, ``noop``, ``vrfy``, ``expn``,
``help``, ``unknown``, ``rejected``; plus ``greeting``, ``extensions``, ``mechanism``,
``idle_timeout`` and ``protocol_error``). Each returns the ``Reply`` to send; the helpers
in ``smtpproto.server_engine.replies`` build the usual ones::

    from smtpproto.server import Session, SMTPServer
    from smtpproto.server_engine.replies import mailbox_unavailable

    class NoBob(Session):
        def rcpt(self, event):
            if event.recipient.startswith("bob@"):
                return mailbox_unavailable("No such user here")
            return super().rcpt(event)

    SMTPServer(session_class=NoBob)           # on asyncio, or with any front end:
    Backend(session_class=NoBob).new_session(ServerConnection())

Secrets never reach ``note`` (the transcript): AUTH logs the identity or the failure
reason only (docs/design.md §4 rule 11).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..sasl.server import (
    CramMD5Server,
    LoginServer,
    PlainServer,
    ScramSHA1Server,
    ScramSHA256Server,
    ServerMechanism,
)
from ..server_engine.auth import AuthExchange
from ..server_engine.connection import ServerConnection
from ..server_engine.events import (
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    ChunkComplete,
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
    QuitReceived,
    RcptReceived,
    ResetReceived,
    ServerEvent,
    StartTLSRequested,
    UnknownCommand,
    VrfyReceived,
)
from ..server_engine.replies import (
    auth_mechanism_unsupported,
    auth_required,
    bad_sequence,
    cannot_verify,
    closing,
    ehlo_reply,
    greeting,
    helo_reply,
    help_reply,
    limits_keyword,
    not_implemented,
    not_recognized,
    ok,
    ready_to_start_tls,
    service_closing,
    start_mail_input,
    syntax_error,
)
from ..wire.errors import ProtocolError
from ..wire.fields import check_flag
from ..wire.reply import Reply
from ..wire.text import escape_text
from ..wire.twins import slot_filler
from .rules import (
    MAX_DELAY,
    Accept,
    Action,
    Context,
    Disconnect,
    Drop,
    Greylist,
    Hook,
    Respond,
    Rule,
    RuleSet,
    Stage,
    Tarpit,
    by_type,
    keeps_message,
    stage_of,
)
from .storage import StoredMessage

__all__ = [
    "DEFAULT_MECHANISMS",
    "MECHANISMS",
    "Backend",
    "Deliver",
    "Note",
    "Response",
    "Session",
]

#: Mechanisms offered when there are users, strongest first.
DEFAULT_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
#: Every mechanism the built-in server can verify, by name (RFC 4954 §4).
MECHANISMS: Mapping[str, Callable[[Callable[[str], str | None]], ServerMechanism]] = {
    "SCRAM-SHA-256": ScramSHA256Server,
    "SCRAM-SHA-1": ScramSHA1Server,
    "CRAM-MD5": CramMD5Server,
    "PLAIN": PlainServer,
    "LOGIN": LoginServer,
}

#: Keeps a message somewhere and returns its queue id; ``OSError`` when it cannot.
Deliver = Callable[[StoredMessage], str]
#: Takes one transcript note (no direction marker; the front end adds it).
Note = Callable[[str], None]


def _no_note(text: str) -> None:
    """The default ``note``: notes go nowhere."""


@dataclass(frozen=True, slots=True)
class Response:
    """What a front end does for one event: wait ``delay`` seconds, send ``replies`` in
    order, then close the connection when ``close`` (no replies and ``close``: drop)."""

    replies: tuple[Reply, ...] = ()
    delay: float = 0.0
    close: bool = False


_NOTHING = Response()
#: ``Response(replies)`` for the per-message path, slots filled directly (``slot_filler``).
_respond_now = slot_filler(Response, ("replies", "delay", "close"))
#: ``Response((reply,))`` by the reply's ``id`` (with the reply, so the id stays its
#: own), shared by every session: responses are immutable, and the hooks answer most
#: commands with the same few ``Reply`` objects. Emptied when full.
_SINGLE: dict[int, tuple[Reply, Response]] = {}
_MAX_SINGLE = 64
#: The hooks' constant replies, made once (a ``Reply`` is immutable).
_OK = ok()
#: ``message``'s 250 is new per message (its queue id); its constant start is kept as
#: octets and the reply built with its slots filled directly when the queue id is plain
#: printable ASCII short enough that ``ok`` (``safe_text``) would change nothing.
_QUEUED = b"2.0.0 Ok: queued as "
_QUEUE_ID_MAX = 200 - len(_QUEUED)  # ``safe_text`` cuts a reply text at 200 characters
_reply_now = slot_filler(Reply, ("code", "raw_lines"))
_SENDER_OK = ok("2.1.0 Sender OK")
_RECIPIENT_OK = ok("2.1.5 Recipient OK")
_START_MAIL_INPUT = start_mail_input()


def _has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (no UTF-8 form)."""
    return not text.isascii() and any("\ud800" <= ch <= "\udfff" for ch in text)


class Backend:
    """What every connection of one server shares, and the ``Session`` factory.

    ``users`` maps user names (SASLprep'd) to passwords; AUTH with ``mechanisms`` is
    offered only when there are users, and only over TLS unless
    ``allow_plaintext_auth``. ``require_auth`` refuses MAIL before AUTH (530, RFC 4954
    §6). ``deliver`` keeps a finished message and returns its queue id; without it
    messages are kept in ``messages``. ``session_class`` is the policy for each
    connection (a ``Session`` subclass). ``rules`` (``rules.py``) are tried at every
    stage before the session's hooks; ``hook`` decides what no rule matched; ``clock``
    (seconds, monotonic) times greylisting. They are kept in ``rules`` (a ``RuleSet``).
    ``rcptmax`` and ``mailmax`` are advertised as LIMITS (RFC 9422; ``None``: not
    advertised), which the engine then enforces: 452 4.5.3 to a RCPT past RCPTMAX in a
    transaction, 451 4.5.3 to a MAIL past MAILMAX in the session.
    """

    def __init__(
        self,
        *,
        hostname: str = "localhost",
        users: Mapping[str, str] | None = None,
        mechanisms: Sequence[str] = DEFAULT_MECHANISMS,
        allow_plaintext_auth: bool = False,
        require_auth: bool = False,
        deliver: Deliver | None = None,
        session_class: type[Session] | None = None,
        rules: Iterable[Rule] = (),
        hook: Hook | None = None,
        clock: Callable[[], float] | None = None,
        rcptmax: int | None = None,
        mailmax: int | None = None,
    ) -> None:
        #: The LIMITS EHLO keyword (None: none); ``ValueError`` for a bad value.
        self.limits = limits_keyword(rcptmax=rcptmax, mailmax=mailmax)
        if (
            not isinstance(hostname, str)
            or not hostname
            or not all("!" <= ch <= "~" for ch in hostname)
        ):
            raise ValueError(f"hostname must be printable ASCII without spaces, got {hostname!r}")
        check_flag("allow_plaintext_auth", allow_plaintext_auth)
        check_flag("require_auth", require_auth)
        if users is not None and not all(
            isinstance(name, str) and isinstance(secret, str) for name, secret in users.items()
        ):
            raise ValueError("users must map user names (str) to passwords (str)")
        for name, secret in (users or {}).items():
            if _has_surrogate(name) or _has_surrogate(secret):  # no UTF-8 form: never usable
                raise ValueError(
                    f"user '{escape_text(name)}': the name or password has a lone surrogate "
                    "(undecodable octets?), which no AUTH can carry"
                )
        unknown = [name for name in mechanisms if name not in MECHANISMS]
        if unknown:
            raise ValueError(f"unsupported AUTH mechanisms: {unknown}")
        self.hostname = hostname
        self.users: dict[str, str] = dict(users or {})
        self.mechanisms = tuple(mechanisms)
        self.allow_plaintext_auth = allow_plaintext_auth
        self.require_auth = require_auth
        self.session_class: type[Session] = Session if session_class is None else session_class
        #: Messages kept when no ``deliver`` callback was given.
        self.messages: list[StoredMessage] = []
        self._deliver = deliver
        #: The rules, their hook and their counters (per server).
        self.rules = RuleSet(rules, hook=hook, clock=clock)

    def __repr__(self) -> str:  # user names only: passwords never appear (rule 11)
        return (
            f"{type(self).__name__}(hostname={self.hostname!r}, users={sorted(self.users)!r}, "
            f"mechanisms={self.mechanisms!r}, session_class={self.session_class.__name__})"
        )

    def new_session(
        self,
        conn: ServerConnection,
        *,
        starttls: bool = False,
        note: Note | None = None,
        peer: str = "",
    ) -> Session:
        """The policy for one new connection driven by ``conn``. ``starttls`` says the
        front end can do a TLS handshake (so STARTTLS may be offered); ``note`` takes
        the session's transcript notes; ``peer`` is the client's IP address."""
        return self.session_class(self, conn, starttls=starttls, note=note, peer=peer)

    def deliver(self, message: StoredMessage) -> str:
        """Keep ``message``; return its queue id (``OSError`` when it cannot be kept)."""
        if self._deliver is not None:
            return self._deliver(message)
        self.messages.append(message)
        return str(len(self.messages))


class Session:
    """The reply policy for one connection: what to answer to each engine event.

    ``replies(event)`` is what a front end calls; the other public methods are hooks a
    subclass overrides, one per command. ``conn`` is the connection's engine (read
    ``conn.tls_active``, ``conn.authenticated``, ``conn.client_name``; the front end
    alone feeds it and sends on it). The built-in answers accept every sender and
    recipient and keep every message.
    """

    def __init__(
        self,
        backend: Backend,
        conn: ServerConnection,
        *,
        starttls: bool = False,
        note: Note | None = None,
        peer: str = "",
    ) -> None:
        self.backend = backend
        self.conn = conn
        #: The client's IP address (greylisting keys on it).
        self.peer = peer
        #: This connection's number on the server (from 1), and its current message's.
        self.number = backend.rules.new_connection()
        self.message_number = 0
        #: The front end can start TLS: STARTTLS is offered before TLS is active.
        self.starttls = starttls
        self.note: Note = _no_note if note is None else note
        #: Content of the message being received (DATA lines or BDAT chunks).
        self.content: list[bytes] = []
        self._auth: AuthExchange | None = None
        self._tarpit: Tarpit | None = None
        self._slowed = 0
        self._own_decide = type(self).decide is not Session.decide

    @property
    def hostname(self) -> str:
        """The server's name, used in the greeting and in replies."""
        return self.backend.hostname

    # -- what a front end calls -------------------------------------------------------

    def opening(self) -> Response:
        """What to do when the connection opens: the ``greeting``, unless a rule at
        stage ``connect`` says otherwise (a 554, a 421 and close, a slow banner)."""
        return self._decide(self._context("connect"), self.greeting)

    def respond(self, event: ServerEvent) -> Response:
        """What to do for ``event``: the rules decide first (``rules.py``), then the
        hooks. No replies when the event expects none (content is collected here),
        else ``conn.replies_due`` of them unless the connection is to close."""
        if not event.expects_reply:
            if isinstance(event, ContentReceived):
                self.content.append(event.data)
            return _NOTHING
        if isinstance(event, MailReceived):
            self.message_number = self.backend.rules.new_message()
            # A new transaction holds nothing of an earlier one (RFC 5321 §4.1.1.2),
            # whoever answers the MAIL: a rule's own 2yz skips the ``mail`` hook.
            self.content = []
        elif isinstance(event, MessageComplete):
            data, self.content = b"".join(self.content), []
            if self.conn.lmtp:  # one decision per recipient, even for just one
                return self._lmtp_message(event, data)
            if not (self._own_decide or self.backend.rules.active):
                response = _respond_now((self.message(event, data),), 0.0, False)
                return response if self._tarpit is None else self._slowed_down(response)
            return self._decide(
                self._context("data_end", event), lambda: self.message(event, data), data=True
            )
        due = self.conn.replies_due
        # Without a rule, a hook or a ``decide`` of a subclass, ``decide`` can only say
        # "the normal answer": the hooks answer at once, no ``Context`` is made.
        if self._own_decide or self.backend.rules.active:
            stage = stage_of(event)
            if stage is not None:
                return self._decide(self._context(stage, event), lambda: self._answer(event), due)
        name = _HOOKS.get(type(event))  # ``_answer``, for the engine's own events in line
        reply = self._answer(event) if name is None else getattr(self, name)(event)
        if due != 1 or self._tarpit is not None:
            return self._slowed_down(Response((reply,) * due))
        known = _SINGLE.get(id(reply))  # the hooks answer with the same few replies
        if known is not None and known[0] is reply:
            return known[1]
        response = _respond_now((reply,), 0.0, False)
        if len(_SINGLE) >= _MAX_SINGLE:
            _SINGLE.clear()
        _SINGLE[id(reply)] = (reply, response)
        return response

    def replies(self, event: ServerEvent) -> list[Reply]:
        """The replies of ``respond(event)`` (its delay and close are for front ends)."""
        return list(self.respond(event).replies)

    def greeting(self) -> Reply:
        """The 220 sent when the connection opens (RFC 5321 §4.2, §3.1); a 554 refuses
        the session (the client may then only QUIT)."""
        return greeting(self.hostname, "ESMTP smtpproto")

    def idle_timeout(self) -> Reply:
        """The 421 sent before closing an idle connection (RFC 5321 §4.5.3.2.7)."""
        return service_closing(self.hostname, "Idle timeout")

    def protocol_error(self, error: ProtocolError) -> Reply:
        """The last reply before closing after input that cannot be answered."""
        return syntax_error("Protocol error, closing")

    # -- hooks: one per command --------------------------------------------------------

    def extensions(self) -> list[str]:
        """The EHLO keywords offered now (RFC 5321 §4.1.1.1): STARTTLS until TLS is
        active (RFC 3207), AUTH when there are users and TLS or ``allow_plaintext_auth``
        (RFC 4954 §4), LIMITS when the backend has any (RFC 9422)."""
        backend = self.backend
        extensions = ["PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN"]
        size = self.conn.config.max_message_size or 0
        extensions += ["CHUNKING", "BINARYMIME", f"SIZE {size}"]
        if self.starttls and not self.conn.tls_active:
            extensions.append("STARTTLS")
        if backend.users and (self.conn.tls_active or backend.allow_plaintext_auth):
            extensions.append("AUTH " + " ".join(backend.mechanisms))
        if backend.limits is not None:
            extensions.append(backend.limits)
        return extensions

    def ehlo(self, event: EhloReceived) -> Reply:
        """EHLO or LHLO: 250 with ``extensions()`` (RFC 5321 §4.1.1.1, RFC 2033 §4.1)."""
        return ehlo_reply(self.hostname, self.extensions(), "greets you")

    def helo(self, event: HeloReceived) -> Reply:
        """HELO: 250 without extensions."""
        return helo_reply(self.hostname)

    def mail(self, event: MailReceived) -> Reply:
        """MAIL FROM (RFC 5321 §4.1.1.2): accepted, or 530 before AUTH when required."""
        if self.backend.require_auth and not self.conn.authenticated:
            return auth_required()
        return _SENDER_OK

    def rcpt(self, event: RcptReceived) -> Reply:
        """RCPT TO (RFC 5321 §4.1.1.3): every recipient is accepted."""
        return _RECIPIENT_OK

    def data(self, event: DataRequested) -> Reply:
        """DATA (RFC 5321 §4.1.1.4): 354, content follows."""
        self.content = []
        return _START_MAIL_INPUT

    def chunk(self, event: ChunkComplete) -> Reply:
        """A BDAT chunk that is not the last (RFC 3030 §2)."""
        return ok(f"2.0.0 {event.size} octets received")

    def message(self, event: MessageComplete, data: bytes) -> Reply:
        """The message is complete (end of DATA, or BDAT LAST): ``data`` exactly as
        received. Delivered through the backend: 250 with the queue id, or 451 when it
        could not be kept (RFC 5321 §4.2.2)."""
        stored = StoredMessage(event.sender, event.recipients, data)
        try:
            queue_id = self.backend.deliver(stored)
        except OSError as error:
            self.note(f"storing the message failed: {error}")
            return Reply(451, (b"4.3.0 Could not store the message",))
        if (
            queue_id.__class__ is str
            and queue_id.isascii()
            and queue_id.isprintable()  # " " to "~": no CR, LF or NUL to escape
            and len(queue_id) <= _QUEUE_ID_MAX
        ):  # exactly what ``ok`` would make, without its checks and escapes
            return _reply_now(250, (_QUEUED + queue_id.encode("ascii"),))
        return ok(f"2.0.0 Ok: queued as {queue_id}")

    def mechanism(self, name: str) -> ServerMechanism | None:
        """A fresh verifier for AUTH ``name`` checking the backend's users, or ``None``
        (504) for a mechanism this server cannot verify."""
        factory = MECHANISMS.get(name)
        return None if factory is None else factory(self.backend.users.get)

    def auth(self, event: AuthRequested | AuthResponse | AuthCancelled) -> Reply:
        """One step of AUTH (RFC 4954 §4): 334 challenges, then 235 or 535; notes the
        outcome (the identity or the failure reason, never a secret)."""
        if isinstance(event, AuthRequested):
            mechanism = self.mechanism(event.mechanism)
            if mechanism is None:
                return auth_mechanism_unsupported()
            self._auth = AuthExchange(mechanism)
        if self._auth is None:
            return bad_sequence()
        reply = self._auth.reply(event)
        if self._auth.done:
            outcome = self._auth.identity or f"failed ({self._auth.failure_reason})"
            self.note(f"AUTH {outcome}")
        return reply

    def start_tls(self, event: StartTLSRequested) -> Reply:
        """STARTTLS (RFC 3207 §4): 220, after which the front end starts the handshake
        (a 454 here would keep the session in plaintext)."""
        return ready_to_start_tls()

    def quit(self, event: QuitReceived) -> Reply:
        """QUIT (RFC 5321 §4.1.1.10): 221; the front end closes after sending it."""
        return closing(self.hostname)

    def reset(self, event: ResetReceived) -> Reply:
        """RSET (RFC 5321 §4.1.1.5)."""
        return _OK

    def noop(self, event: NoopReceived) -> Reply:
        """NOOP (RFC 5321 §4.1.1.9)."""
        return _OK

    def vrfy(self, event: VrfyReceived) -> Reply:
        """VRFY: 252, cannot verify but will try (RFC 5321 §3.5.3)."""
        return cannot_verify()

    def expn(self, event: ExpnReceived) -> Reply:
        """EXPN: 502 not implemented (RFC 5321 §3.5.3 allows refusing it)."""
        return not_implemented()

    def help(self, event: HelpReceived) -> Reply:
        """HELP (RFC 5321 §4.1.1.8)."""
        return help_reply("2.0.0 smtpproto built-in server; see RFC 5321")

    def unknown(self, event: UnknownCommand) -> Reply:
        """A verb the engine does not know: 500 (RFC 5321 §4.2.4)."""
        return not_recognized()

    def rejected(self, event: CommandRejected) -> Reply:
        """A command the engine refused (syntax, sequence, limits): its own reply."""
        return event.reply

    def decide(self, context: Context) -> tuple[Action | None, float]:
        """The action for ``context`` and the delay before it: the backend's rules, then
        its hook (``None``: the normal answer). Override for decisions in Python, in
        go-smtp's style, with ``super().decide(context)`` to keep the rules."""
        return self.backend.rules.decide(context)

    # -- applying what the rules decided ----------------------------------------------

    def _context(
        self, stage: Stage, event: ServerEvent | None = None, recipient: str | None = None
    ) -> Context:
        sender, recipients = self.conn.sender, self.conn.recipients
        if isinstance(event, MailReceived):
            sender = event.sender
        elif isinstance(event, RcptReceived):
            recipient = event.recipient
        elif isinstance(event, MessageComplete):
            sender, recipients = event.sender, event.recipients
        return Context(
            stage=stage,
            peer=self.peer,
            connection=self.number,
            message=self.message_number,
            sender=sender,
            recipient=recipient,
            recipients=recipients,
            client_name=self.conn.client_name,
            event=event,
        )

    def _decide(
        self, context: Context, normal: Callable[[], Reply], due: int = 1, *, data: bool = False
    ) -> Response:
        """Apply the action decided for ``context``; ``normal`` is the hooks' answer
        (for ``data``, calling it keeps the message)."""
        action, delay = self.decide(context)
        if action is not None:
            self.note(f"rule: {type(action).__name__} at {context.stage}")
        if context.stage == "auth" and action is not None and not isinstance(action, Accept):
            self._auth = None
        response = self._apply(action, context, normal, due, data=data)
        return self._slowed_down(response, delay)

    def _apply(
        self,
        action: Action | None,
        context: Context,
        normal: Callable[[], Reply],
        due: int,
        *,
        data: bool,
    ) -> Response:
        if isinstance(action, Disconnect):
            return Response((action.reply(),), close=True)
        if isinstance(action, Drop):
            if data and action.deliver:
                normal()
            return Response(close=True)
        if isinstance(action, Respond):
            reply = action.reply(context.stage)
            if data and reply.is_success:  # kept as usual, answered with the rule's text
                kept = normal()
                reply = reply if kept.is_success else kept
            return Response((reply,) * due)
        if isinstance(action, Greylist) and self.backend.rules.greylisted(action, context):
            return Response((action.reply(),) * due)
        if isinstance(action, Tarpit):
            self._tarpit, self._slowed = action, 0
        return Response((normal(),) * due)

    def _lmtp_message(self, event: MessageComplete, data: bytes) -> Response:
        """LMTP's end of data (RFC 2033 §4.2): one decision and one reply per accepted
        recipient, in order; the message is kept once, for the recipients it reached."""
        decided = [self.decide(self._context("data_end", event, r)) for r in event.recipients]
        stop = next(
            (i for i, (a, _) in enumerate(decided) if isinstance(a, (Disconnect, Drop))),
            len(decided),
        )
        last = decided[stop][0] if stop < len(decided) else None
        reached = decided[: stop + 1] if isinstance(last, Drop) else decided[:stop]
        keep = tuple(
            r
            for r, (a, _) in zip(event.recipients[: len(reached)], reached, strict=True)
            if keeps_message(a)
        )
        kept = self.message(replace(event, recipients=keep), data) if keep else None
        replies: list[Reply] = []
        for action, _ in decided[:stop]:
            # A 4yz/5yz rule answers itself; a 2yz one only if the message was kept.
            if isinstance(action, Respond) and (
                action.code >= 400 or kept is None or kept.is_success
            ):
                replies.append(action.reply())
            else:  # the message was kept for this recipient, or could not be kept
                assert kept is not None
                replies.append(kept)
            if isinstance(action, Tarpit):
                self._tarpit, self._slowed = action, 0
        if isinstance(last, Disconnect):
            replies.append(last.reply())
        delay = max((d for _, d in decided), default=0.0)
        return self._slowed_down(Response(tuple(replies), close=last is not None), delay)

    def _slowed_down(self, response: Response, delay: float = 0.0) -> Response:
        """``response`` after ``delay`` plus the tarpit's, which grows with each reply."""
        if self._tarpit is not None:
            tarpit = self._tarpit.delay + self._tarpit.step * self._slowed
            delay += tarpit
            self._slowed += 1
        if not delay:
            return response
        return replace(response, delay=min(delay, MAX_DELAY))

    def _answer(self, event: ServerEvent) -> Reply:
        """The hook's reply for an event that expects one, ``MessageComplete`` aside
        (``respond`` gives ``message`` the data)."""
        name = _HOOKS.get(type(event)) or by_type(_HOOKS, event)
        if name is None:
            return ok()
        hook: Callable[[ServerEvent], Reply] = getattr(self, name)
        return hook(event)


#: The ``Session`` hook answering each event (``MessageComplete`` also takes the data).
_HOOKS: Mapping[type[ServerEvent], str] = {
    EhloReceived: "ehlo",
    HeloReceived: "helo",
    MailReceived: "mail",
    RcptReceived: "rcpt",
    DataRequested: "data",
    ChunkComplete: "chunk",
    AuthRequested: "auth",
    AuthResponse: "auth",
    AuthCancelled: "auth",
    StartTLSRequested: "start_tls",
    QuitReceived: "quit",
    ResetReceived: "reset",
    NoopReceived: "noop",
    VrfyReceived: "vrfy",
    ExpnReceived: "expn",
    HelpReceived: "help",
    UnknownCommand: "unknown",
    CommandRejected: "rejected",
}
