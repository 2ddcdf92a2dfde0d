"""High-level client operations written once, as sans-IO session drivers.

Theory of operation
-------------------
A ``Session`` wraps one ``ClientConnection``. Each operation (``open``, ``starttls``,
``login``, ``sendmail``, ``send_message``, ``send_many``, ``noop``, ``rset``, ``vrfy``,
``xclient``, ``xforward``, ``quit``)
is a generator: it *yields* an I/O request, the adapter performs it and ``send``\\s the result back,
and the generator's return value is the operation's result. The blocking, asyncio and
trio adapters each run the same generators in their own loop, so every protocol
decision (what to send next, when to start TLS, which AUTH mechanism, how a reply
maps to an exception) is made here or in the engine, never in an adapter.

Diagnostics stop early (swaks' ``--quit-after``): ``open(until="greeting"|"ehlo"|"tls")``
(``starttls()`` goes on after ``"ehlo"``) and ``sendmail(stop_after="mail"|"rcpt"|
"data")``, with ``drop=True`` closing instead of RSET (see ``drivers.mail``). The session
keeps the greeting (``greeting``) and the capabilities of the cleartext EHLO
(``capabilities_before_tls``), which STARTTLS makes the engine forget.

The requests and what the adapter sends back:

``Write(data, timeout)``
    Write every byte of ``data``; send back ``None``. ``timeout`` bounds the write.
``Read(timeout, resume)``
    Send back the bytes received (any amount, at least one octet), or ``b""`` on EOF.
    ``timeout`` is the engine's RFC 5321 §4.5.3.2 timeout for what it waits on (``None``:
    wait without limit); the adapter may shorten it (an overall message deadline).
    The timer is per command, not per read: ``resume`` True means the previous read's
    bytes did not complete the reply, and the wait keeps the deadline it started with.
``UpgradeTLS(server_hostname, timeout)``
    Run the TLS client handshake on the transport (SNI and host-name check with
    ``server_hostname``); send back the SCRAM-PLUS ``ChannelBinding`` or ``None``. The
    driver then calls ``tls_established()``. With the IMPLICIT policy it is the first
    request of ``open``, before the greeting (RFC 8314 §3.3).

Failures go *into* the generator with ``generator.throw(exc)``:

* ``TimeoutError`` when a request's timeout passed. The driver raises
  ``SMTPDeliveryTimeoutError`` when the reply to the end of the content was due
  (RFC 1047, docs/design.md §4 rule 8) and ``SMTPTimeoutError`` otherwise.
* ``OSError`` when the transport failed (reset, broken pipe). The driver first asks for
  the server's last words with one more ``Read(LAST_WORDS_TIMEOUT)`` (the adapter hands
  out what it buffered; EOF or another error there means nothing): a 421 or a refusal
  of the content is reported as that reply. Otherwise ``SMTPDeliveryStatusUnknown``
  when the final reply was due, ``SMTPConnectError`` ("connection lost") if not.
* Any ``SMTPError`` the adapter made itself (TLS handshake or certificate failures are
  ``SMTPTLSError``: the driver cannot tell an ``ssl`` error from other ``OSError``\\s, so
  the adapter maps them) is re-raised unchanged.

Engine ``ProtocolError``\\s become ``SMTPProtocolError`` (``SMTPDeliveryStatusUnknown``
when the reply to the end of the content was due: a garbled or cut final reply does not
say the message was refused). After any exception other
than ``SMTPReplyError``/``SMTPRecipientsRefused`` on a still-usable session,
``Session.usable`` is False and the adapter must close the transport; a session is
never reused after a timeout, a cancellation or a transport error. The same holds when
a driver *returns* with ``usable`` False: ``sendmail(stop_after="data")`` stops at the
354, after which only content could be sent, so the adapter closes without QUIT.

Reading while writing (RFC 2920 §3.2): a server may answer pipelined commands while
the client is still writing the group or a long body. An adapter must never stop
reading while it blocks in a write: it reads whatever arrives into a buffer of at most
``MAX_READAHEAD`` octets and hands it to the next ``Read`` at once. Past that bound
it stops reading, and the write's timeout ends a server that neither reads nor stops
talking.

Content is streamed: files are read ``chunk_size`` octets at a time, iterables chunk by
chunk, and each chunk is encoded and written before the next is read, so memory stays
bounded whatever the message size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeVar

from ..client_engine.capabilities import Capabilities
from ..client_engine.config import ClientConfig, TLSPolicy
from ..client_engine.connection import ClientConnection
from ..client_engine.events import (
    NEED_DATA,
    Auth,
    AuthChallenge,
    AuthContinue,
    AuthFailed,
    AuthSucceeded,
    Command,
    Ehlo,
    EhloAccepted,
    Greeting,
    GreetingRefused,
    HelloRefused,
    Helo,
    HeloAccepted,
    Lhlo,
    Noop,
    Quit,
    Rset,
    ServiceClosing,
    StartTLS,
    StartTLSRefused,
    TLSReady,
    TLSUnavailable,
    Vrfy,
    Xclient,
    Xforward,
)
from ..client_engine.proxy import ProxyHeader
from ..sasl.base import ChannelBinding, ClientMechanism
from ..wire.errors import LocalProtocolError, RemoteProtocolError
from ..wire.reply import Reply
from .batch import BatchDrivers
from .core import LAST_WORDS_TIMEOUT, caller_checked, reply_error
from .exceptions import (
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTLSError,
)
from .mail import MAIL_STAGES, MailStage
from .support import (
    DEFAULT_CHUNK_SIZE,
    MAX_READAHEAD,
    Driver,
    MailOptions,
    Read,
    Request,
    UpgradeTLS,
    Write,
    default_port,
    default_tls_policy,
    hello_name,
    logging_transcript,
    make_timeouts,
    session_config,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "LAST_WORDS_TIMEOUT",
    "MAIL_STAGES",
    "MAX_READAHEAD",
    "OPEN_STAGES",
    "Driver",
    "MailOptions",
    "MailStage",
    "OpenStage",
    "Read",
    "Request",
    "Session",
    "UpgradeTLS",
    "Write",
    "default_port",
    "default_tls_policy",
    "hello_name",
    "logging_transcript",
    "make_timeouts",
    "session_config",
]

T = TypeVar("T")

#: Where ``Session.open`` may stop, in session order (see ``Session.open``).
OpenStage = Literal["greeting", "ehlo", "tls"]
OPEN_STAGES: tuple[OpenStage, ...] = ("greeting", "ehlo", "tls")


class Session(BatchDrivers):
    """The drivers over one ``ClientConnection``. See the module docstring.

    ``server_hostname`` is the name TLS verifies (and SNI sends); ``local_hostname``
    the EHLO argument (see ``hello_name``); ``proxy_header`` a PROXY protocol header
    that ``open`` writes first (before implicit TLS and the greeting).
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        server_hostname: str | None = None,
        local_hostname: str = "localhost",
        proxy_header: ProxyHeader | None = None,
    ) -> None:
        config = config if config is not None else ClientConfig()
        super().__init__(config, ClientConnection(config))
        self.server_hostname = server_hostname
        self.local_hostname = local_hostname
        if proxy_header is not None and not isinstance(proxy_header, ProxyHeader):
            raise LocalProtocolError(
                f"proxy_header must be a ProxyHeader, got {type(proxy_header).__name__}"
            )
        self.proxy_header = proxy_header
        #: Channel binding of the TLS layer (for ``SCRAM-*-PLUS``), once TLS is up.
        self.channel_binding: ChannelBinding | None = None
        #: The last greeting or EHLO/HELO reply.
        self.hello_reply: Reply | None = None
        #: The server's greeting (RFC 5321 §4.2: the 220 banner), once received.
        self.greeting: Reply | None = None
        #: What the last EHLO/LHLO answered in cleartext advertised: with STARTTLS these
        #: are the capabilities RFC 3207 §4.2 makes the client forget (kept here for
        #: reports such as "AUTH offered in cleartext"); without TLS the same as
        #: ``conn.capabilities``; None under implicit TLS, after HELO, or before EHLO.
        self.capabilities_before_tls: Capabilities | None = None

    # -- operations ---------------------------------------------------------------------

    @caller_checked
    def open(self, until: OpenStage | None = None) -> Driver[Reply]:
        """The PROXY header if any, greeting, EHLO (HELO when EHLO is not supported and
        the policy allows), then STARTTLS per the TLS policy and EHLO again (RFC 3207
        §4.2). Returns the last hello reply. A refused greeting raises
        ``SMTPReplyError``; a REQUIRED policy that cannot be met raises
        ``SMTPTLSError`` (RFC 3207 §4.1, RFC 8314). A reply that is neither the step's
        success nor a 4yz/5yz refusal (a 250 greeting, a 354 to EHLO, a 250 to
        STARTTLS) raises ``SMTPProtocolError`` (``core.reply_error``), as in ``login``
        and the one-step commands.

        ``until`` stops early, the session still usable (QUIT may follow):
        ``"greeting"`` after the greeting (returned; under implicit TLS the handshake
        came first), ``"ehlo"`` after the first EHLO/HELO (before STARTTLS; a REQUIRED
        policy that cannot be met still raises), ``"tls"`` after STARTTLS and the
        second EHLO, the same as None. Another value is a ``LocalProtocolError`` at once.
        """
        if until is not None and until not in OPEN_STAGES:
            raise LocalProtocolError(
                f"until must be one of {', '.join(OPEN_STAGES)} or None, got {until!r}"
            )
        return self._guard(self._open(until))

    def _open(self, until: OpenStage | None) -> Driver[Reply]:
        policy = self.config.tls_policy
        if self.proxy_header is not None:  # the first bytes, in cleartext (proxy-protocol §2)
            yield from self._send(self.proxy_header)
        if policy is TLSPolicy.IMPLICIT:
            self.channel_binding = yield UpgradeTLS(
                self.server_hostname, self.config.timeouts.other
            )
        event = yield from self._event()
        if isinstance(event, GreetingRefused):
            self.greeting = event.reply
            raise reply_error(event.reply, None)
        if not isinstance(event, Greeting):
            raise SMTPProtocolError(LocalProtocolError(f"expected the greeting, got {event!r}"))
        self.greeting = self.hello_reply = event.reply
        if until == "greeting":
            return event.reply
        reply = yield from self._hello()
        if until == "ehlo":
            return reply
        return (yield from self._starttls(reply))

    def _starttls(self, reply: Reply | None) -> Driver[Reply]:
        """STARTTLS per the policy and EHLO again; ``reply``: the last hello reply (a
        REQUIRED policy without STARTTLS offered was refused by ``_hello`` already)."""
        if reply is None:
            raise LocalProtocolError("starttls() needs an open session (open(until='ehlo'))")
        policy = self.config.tls_policy
        caps = self.conn.capabilities
        wants_tls = policy in (TLSPolicy.OPPORTUNISTIC, TLSPolicy.REQUIRED)
        if wants_tls and caps is not None and caps.starttls and not self.conn.tls_active:
            yield from self._send(StartTLS())
            event = yield from self._event()
            if isinstance(event, TLSReady):
                self.channel_binding = yield UpgradeTLS(
                    self.server_hostname, self.config.timeouts.other
                )
                self.conn.tls_established()
                reply = yield from self._hello()
            else:
                assert isinstance(event, StartTLSRefused)
                self._check_tls_unavailable()
                if not event.reply.is_error:  # not a refusal: never go on in cleartext
                    raise reply_error(event.reply, "STARTTLS")
        return reply

    def _check_tls_unavailable(self) -> None:
        """Raise ``SMTPTLSError`` if the engine reports ``TLSUnavailable`` now (it
        follows the EHLO or STARTTLS reply that made a REQUIRED policy impossible)."""
        event = self.conn.next_event()
        if isinstance(event, TLSUnavailable):
            raise SMTPTLSError(f"{event.reason}: {event.reply}")
        if isinstance(event, ServiceClosing):  # the hello was answered with 421
            raise SMTPReplyError(event.reply)
        if event is not NEED_DATA:
            raise RemoteProtocolError(f"unexpected {type(event).__name__} after a hello")

    def _hello(self) -> Driver[Reply]:
        hostname = self.local_hostname
        hello: Ehlo | Helo | Lhlo = Ehlo(hostname=hostname)
        if self.config.lmtp:
            hello = Lhlo(hostname=hostname)
        elif self.config.helo_only:
            hello = Helo(hostname=hostname)
        yield from self._send(hello)
        event = yield from self._event()
        if isinstance(event, HelloRefused) and event.helo_fallback:
            yield from self._send(Helo(hostname=hostname))
            event = yield from self._event()
        if isinstance(event, HelloRefused):
            self._check_tls_unavailable()
            raise reply_error(event.reply, type(event.command).__name__.upper())
        assert isinstance(event, (EhloAccepted, HeloAccepted)), event
        self.hello_reply = event.reply
        if not self.conn.tls_active:
            self.capabilities_before_tls = self.conn.capabilities
        self._check_tls_unavailable()
        return event.reply

    @caller_checked
    def login(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: ClientMechanism | None = None,
    ) -> Driver[Reply]:
        """AUTH (RFC 4954) with ``mechanism``, or the strongest offered mechanism the
        credentials allow (``sasl.choose_mechanism``; -PLUS when TLS gave a channel
        binding). Returns the 235 reply; a refusal raises ``SMTPReplyError``."""
        return self._guard(self._login(username, password, token, mechanism))

    def _login(
        self,
        username: str,
        password: str | None,
        token: str | None,
        mechanism: ClientMechanism | None,
    ) -> Driver[Reply]:
        caps = self.conn.capabilities
        offered = caps.auth_mechanisms if caps is not None else frozenset()
        if mechanism is None:
            if not offered:
                raise LocalProtocolError("the server does not advertise AUTH (RFC 4954 §3)")
            from ..sasl.mechanisms import choose_mechanism  # SCRAM, SASLprep: on first use

            mechanism = choose_mechanism(
                offered,
                username=username,
                password=password,
                token=token,
                channel_binding=self.channel_binding,
            )
            if mechanism is None:
                raise LocalProtocolError(
                    "no offered AUTH mechanism fits the credentials: " + " ".join(sorted(offered))
                )
        yield from self._send(Auth(mechanism=mechanism))
        while True:
            event = yield from self._event()
            if isinstance(event, AuthChallenge):
                yield from self._send(AuthContinue())
            elif isinstance(event, AuthSucceeded):
                return event.reply
            elif isinstance(event, AuthFailed):
                raise reply_error(event.reply, "AUTH")

    @caller_checked
    def noop(self) -> Driver[Reply]:
        """NOOP (RFC 5321 §4.1.1.9)."""
        return self._guard(self._simple(Noop(), "NOOP"))

    @caller_checked
    def rset(self) -> Driver[Reply]:
        """RSET (RFC 5321 §4.1.1.5)."""
        return self._guard(self._simple(Rset(), "RSET"))

    @caller_checked
    def vrfy(self, address: str) -> Driver[Reply]:
        """VRFY (RFC 5321 §4.1.1.6); 252 ("cannot verify") is a success reply."""
        return self._guard(self._simple(Vrfy(argument=address), "VRFY"))

    @caller_checked
    def xclient(
        self, attributes: Mapping[str, str], *, require_advertised: bool = True
    ) -> Driver[Reply]:
        """XCLIENT (Postfix XCLIENT_README): override NAME, ADDR, PORT, PROTO, HELO,
        LOGIN, DESTADDR, DESTPORT as the server sees the client. The 220 reply is a new
        greeting: the session sends EHLO again (``hello_reply``, capabilities renewed)
        and returns that 220; a refusal raises ``SMTPReplyError``. Each attribute must
        be advertised unless ``require_advertised`` is False (see ``Xclient``)."""
        command = Xclient(attributes=attributes, require_advertised=require_advertised)
        return self._guard(self._xclient(command))

    @caller_checked
    def starttls(self) -> Driver[Reply]:
        """The rest of ``open`` after ``open(until="ehlo")``: STARTTLS as the TLS policy
        asks (when offered, or required: ``SMTPTLSError`` if not offered, RFC 3207
        §4), then EHLO again (§4.2). Returns the last hello reply; without TLS to start
        (policy NONE, already under TLS, opportunistic and not offered) it sends
        nothing. For commands that must precede STARTTLS (swaks'
        ``--xclient-before-starttls``)."""
        return self._guard(self._starttls(self.hello_reply))

    def _xclient(self, command: Xclient) -> Driver[Reply]:
        reply = yield from self._simple(command, "XCLIENT")
        if reply.code != 220:
            raise reply_error(reply, "XCLIENT")
        self.greeting = reply
        yield from self._hello()
        return reply

    @caller_checked
    def xforward(self, attributes: Mapping[str, str]) -> Driver[Reply]:
        """XFORWARD (Postfix XFORWARD_README): the original client's NAME, ADDR, PORT,
        PROTO, HELO, IDENT, SOURCE for the next mail transaction. Returns the 250
        reply; a refusal raises ``SMTPReplyError``."""
        return self._guard(self._simple(Xforward(attributes=attributes), "XFORWARD"))

    @caller_checked
    def quit(self) -> Driver[Reply]:
        """QUIT (RFC 5321 §4.1.1.10); the adapter closes the transport afterwards."""
        return self._guard(self._simple(Quit(), "QUIT"))

    def _simple(self, command: Command, verb: str) -> Driver[Reply]:
        yield from self._send(command)
        return (yield from self._reply_to(command, verb))
