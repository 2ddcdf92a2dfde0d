"""The client operations and the driver loop, written once: async here for the asyncio
and trio adapters; ``sync_base`` (the blocking adapter's) is generated from this file by
``scripts/unasync.py``. Change this file, then run the script (CI checks they agree).

Theory of operation
-------------------
``AsyncClientBase`` holds everything of an async client that does not depend on the
event loop (what never waits is ``ClientCore``'s, in ``common``): the operations
(``login``, ``sendmail``, ``send_message``, ``send_many``, ``noop``, ``rset``, ``vrfy``,
``xclient``, ``xforward``, ``starttls``, ``quit``), the async context manager, and ``_drive``, the
loop that runs a sans-IO driver from ``Session``. ``_drive`` performs each request with
a primitive of the concrete adapter: ``_send`` (a ``Write``; it may also take the
driver's following requests, as trio's read-ahead burst does), ``_read`` and
``_handshake`` (an ``UpgradeTLS``: the adapter runs the handshake, ``_start_tls`` here
times it, records ``tls_info`` and answers with the channel binding). A failure of a
primitive that ``_transport_error`` maps (``OSError`` including ``TimeoutError``, TLS
failures, plus ``SMTPTLSError`` and ``ProtocolError`` from the adapter or the engine) is
thrown into the driver, which turns it into the right ``SMTPError``. Anything else (a
cancellation, ``KeyboardInterrupt``) cuts the exchange short: the driver is closed, the
transport dropped (``_drop``) and the exception propagates; the client is never reused.
So is an exception out of the driver that leaves the session unusable, and a driver that
returns with the session unusable on purpose (``sendmail(stop_after="data")`` stops at
the 354): then the transport is closed without QUIT.

What the driver gets next lives in a ``Step`` (``common``), so that an adapter can
leave ``_drive`` (trio over a TLS or given stream: its deadline cancel scope fired,
``_cut_by_deadline``) and resume it with a ``TimeoutError`` thrown in. This module
imports no event loop.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from email.message import Message
from inspect import isawaitable, signature
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from ..client_engine.capabilities import Capabilities
from ..client_engine.events import TransactionResult
from ..drivers.batch import DEFAULT_MAX_IN_FLIGHT, BatchItem, Outcome, OutcomeCallback
from ..drivers.envelope import envelope_from_message
from ..drivers.exceptions import (
    SMTPBatchInterrupted,
    SMTPError,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTLSError,
)
from ..drivers.session import (
    Driver,
    MailOptions,
    MailStage,
    OpenStage,
    Read,
    Request,
    Session,
    T,
    UpgradeTLS,
    Write,
)
from ..drivers.support import ContentSource, ProgressCallback, hello_name
from ..sasl.base import ChannelBinding, ClientMechanism
from ..wire.errors import LocalProtocolError, ProtocolError
from ..wire.reply import Reply
from .common import ClientCore, ClientOptions, Step, check_client_options, usage_error
from .smtplib_compat import smtplib_compatible
from .tls import SSLConnection
from .tokens import AsyncTokenSource, checked_token

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AsyncClientBase", "one_call_send", "send_in_one_call"]

C = TypeVar("C", bound="AsyncClientBase")
P = ParamSpec("P")


class AsyncClientBase(ClientCore, abc.ABC):
    """An async SMTP/LMTP client without its transport; see the module doc."""

    _NOT_CONNECTED = "not connected: await connect() or use `async with`"
    #: The sans-IO session of the connection, once connected.
    _session: Session | None = None

    # -- transport primitives (the concrete adapter) ------------------------------------

    @abc.abstractmethod
    async def _open(self) -> str | None:
        """Connect unless a connected transport was given (``SMTPConnectError`` when it
        fails); return the local IP address, or None when there is none."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the connection without QUIT; the client cannot be used again."""

    async def _drop(self) -> None:
        """Drop the transport at once because the session broke or was cut short."""
        await self.aclose()

    @abc.abstractmethod
    async def _send(self, request: Write, driver: Driver[Any], step: Step) -> Request | None:
        """Write ``request.data`` within ``request.timeout``. May go on with the driver's
        next requests (storing outcomes in ``step``); returns the first it did not
        perform, or None."""

    @abc.abstractmethod
    async def _read(self, timeout: float | None) -> bytes:
        """Some received bytes (``b""`` at the end of the stream); a wait ends at
        ``_read_deadline(timeout)`` (one deadline per reply awaited)."""

    @abc.abstractmethod
    async def _handshake(self, server_hostname: str | None, timeout: float | None) -> SSLConnection:
        """Handshake TLS over the connection; return what ``version()``, ``cipher()``
        and ``getpeercert()`` of the new TLS layer are asked of."""

    # -- session ------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities | None:
        """What the server's last EHLO advertised (None before it, or after HELO)."""
        return self._session.conn.capabilities if self._session is not None else None

    @property
    def session(self) -> Session:
        """The sans-IO session (engine state, TLS status, channel binding)."""
        if self._session is None:
            raise usage_error(self._NOT_CONNECTED)
        return self._session

    def _new_session(self, local_address: str | None) -> Session:
        """The session for a fresh connection; ``local_address`` (the local IP, None for
        a unix socket or an opaque stream) becomes the EHLO name's address literal when
        no ``local_hostname`` was given."""
        self._session = Session(
            self._config,
            server_hostname=self._server_hostname,
            local_hostname=hello_name(self._local_hostname, local_address),
            proxy_header=self._proxy_header,
        )
        return self._session

    # -- connection ---------------------------------------------------------------------

    async def connect(self, until: OpenStage | None = None) -> Reply:
        """Connect and open the session (greeting, EHLO, STARTTLS per the policy);
        ``until`` (``"greeting"``, ``"ehlo"``, ``"tls"``) stops early, see
        ``Session.open``. Returns the last reply received."""
        if self._session is not None:
            raise usage_error("this client is already connected; make a new one")
        try:
            local_address = await self._open()
        except SMTPError as error:
            failure = error
        else:
            session = self._new_session(local_address)
            try:
                driver = session.open(until)
            except SMTPProtocolError as error:  # a bad ``until``: nothing was sent
                await self.aclose()
                raise smtplib_compatible(error) from error.error
            return await self._operation(lambda _: driver)
        raise smtplib_compatible(failure)

    async def __aenter__(self: C) -> C:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """QUIT when the session is still healthy (also after a refused command), then
        close. A failing QUIT (a close, a 421 or a refusal instead of 221; RFC 5321
        §4.1.1.10) is not reported: the connection is closed either way, and an error
        here would hide the block's outcome (an exception, or a message already
        delivered: taken for a failed send, it would be sent again)."""
        try:
            if self._session is not None and self._session.quit_on_exit(exc_type):
                with contextlib.suppress(SMTPError):
                    await self.quit()
        finally:
            await self.aclose()

    # -- operations ---------------------------------------------------------------------

    async def login(
        self,
        username: str,
        password: str | None = None,
        *,
        token: AsyncTokenSource | None = None,
        mechanism: ClientMechanism | None = None,
    ) -> Reply:
        """AUTH with the strongest offered mechanism (see ``Session.login``). ``token``
        is an OAuth 2.0 token for XOAUTH2/OAUTHBEARER, or a token provider: a callable
        returning a fresh token, called once per login (the asyncio and trio clients
        also take a coroutine function)."""
        bearer = await self._fresh_token(token) if callable(token) else token
        return await self._operation(
            lambda session: session.login(username, password, token=bearer, mechanism=mechanism)
        )

    async def _fresh_token(self, provider: Callable[[], str | Awaitable[str]]) -> str:
        """Call the token provider (and await what it returns, when async)."""
        token = provider()
        if isawaitable(token):
            return checked_token(await token)
        return checked_token(token)

    async def sendmail(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        progress: ProgressCallback | None = None,
        stop_after: MailStage | None = None,
        drop: bool = False,
        raw: bool = False,
    ) -> TransactionResult:
        """Send one message (see ``Session.sendmail``); per-recipient results.
        ``stop_after`` (``"mail"``, ``"rcpt"``, ``"data"``) ends the transaction early
        without delivering: after ``"mail"``/``"rcpt"`` with RSET, or with ``drop=True``
        by closing the connection without RSET or QUIT (swaks' ``--drop-after``);
        after ``"data"`` the connection is always closed (no QUIT). ``raw=True`` sends
        ``content`` (bytes, str or a seekable binary file) as DATA content exactly as
        given, for testing servers: no line-end fixes, no dot-stuffing; content that
        would end the DATA early is refused before MAIL (see ``Session.sendmail``)."""
        return await self._operation(
            lambda session: session.sendmail(
                sender,
                recipients,
                content,
                options=options,
                pipelining=pipelining,
                chunking=chunking,
                progress=progress,
                stop_after=stop_after,
                drop=drop,
                raw=raw,
            ),
            message=True,
            sender=sender,
        )

    async def send_message(
        self,
        msg: Message,
        *,
        sender: str | None = None,
        recipients: str | Iterable[str] | None = None,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransactionResult:
        """Send an ``email.message`` message (see ``Session.send_message``)."""
        return await self._operation(
            lambda session: session.send_message(
                msg,
                sender=sender,
                recipients=recipients,
                options=options,
                pipelining=pipelining,
                chunking=chunking,
                progress=progress,
            ),
            message=True,
            sender=sender,
            envelope_of=msg,
        )

    async def send_many(
        self,
        messages: Iterable[BatchItem],
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        on_outcome: OutcomeCallback | None = None,
    ) -> list[Outcome]:
        """Send many messages, one round trip each with PIPELINING (see
        ``Session.send_many``): one ``TransactionResult`` or ``SMTPError`` per message,
        in order; a shorter list means the session ended. The per-message deadline does
        not apply; every wait has its RFC 5321 timeout.

        ``on_outcome(index, outcome)`` (a plain function) streams the outcomes instead:
        each is passed on as soon as it is known and not kept, and the list returned is
        empty, so memory stays flat however many messages the iterable yields. An
        exception raised by ``on_outcome`` ends the batch and propagates; the connection
        is closed, and messages already written may have been delivered unreported. An
        ``Exception`` raised by the iterable ``messages`` stops taking messages: those
        already taken are finished, then ``SMTPBatchInterrupted`` (its ``outcomes``: the
        list this would have returned) is raised from it; the connection stays open."""
        stream = None
        if on_outcome is not None:
            if not callable(on_outcome):
                raise usage_error("on_outcome must be a callable or None")
            report = on_outcome

            def stream(index: int, outcome: Outcome) -> None:
                report(index, smtplib_compatible(outcome))

        try:
            outcomes = await self._operation(
                lambda session: session.send_many(
                    messages,
                    options=options,
                    pipelining=pipelining,
                    chunking=chunking,
                    max_in_flight=max_in_flight,
                    on_outcome=stream,
                )
            )
        except SMTPBatchInterrupted as interrupted:  # the iterable raised: same outcomes
            interrupted.outcomes = _compatible_outcomes(interrupted.outcomes)
            raise
        return _compatible_outcomes(outcomes)

    async def noop(self) -> Reply:
        """NOOP."""
        return await self._operation(Session.noop)

    async def rset(self) -> Reply:
        """RSET."""
        return await self._operation(Session.rset)

    async def vrfy(self, address: str) -> Reply:
        """VRFY ``address``."""
        return await self._operation(lambda session: session.vrfy(address))

    async def xclient(
        self,
        attributes: Mapping[str, str],
        *,
        require_advertised: bool = True,
    ) -> Reply:
        """XCLIENT ``attributes`` (Postfix), then EHLO again; returns the 220 reply.
        ``require_advertised=False`` sends attributes the server does not list."""
        return await self._operation(
            lambda session: session.xclient(attributes, require_advertised=require_advertised)
        )

    async def starttls(self) -> Reply:
        """After ``connect(until="ehlo")``: STARTTLS as the TLS policy asks, then EHLO
        again (see ``Session.starttls``); returns the last hello reply."""
        return await self._operation(Session.starttls)

    async def xforward(self, attributes: Mapping[str, str]) -> Reply:
        """XFORWARD ``attributes`` (Postfix); returns the 250 reply."""
        return await self._operation(lambda session: session.xforward(attributes))

    async def quit(self) -> Reply:
        """QUIT, then close the connection."""
        try:
            return await self._operation(Session.quit)
        finally:
            await self.aclose()

    # -- the driver loop ----------------------------------------------------------------

    async def _operation(
        self,
        make: Callable[[Session], Driver[T]],
        *,
        message: bool = False,
        sender: str | None = None,
        envelope_of: Message | None = None,
    ) -> T:
        """Run the driver ``make`` builds for the session (under the per-message
        deadline when ``message``). Every error leaves as the smtplib-compatible twin
        (``smtplib_compat``; a refused MAIL names ``sender``, else the envelope sender
        of ``envelope_of``); a caller mistake found before the driver starts (a bad
        argument, not connected) as ``usage_error``, the session left as it was."""
        try:
            driver = make(self.session)
            if not message:
                return await self._run(driver)
            self._start_message()
            try:
                return await self._run(driver)
            finally:
                self._end_message()
        except LocalProtocolError as error:
            failure: SMTPError = SMTPProtocolError(error)
        except SMTPError as error:
            failure = error
        refused_mail = isinstance(failure, SMTPReplyError) and failure.command == "MAIL"
        if refused_mail and sender is None and envelope_of is not None:
            sender = envelope_from_message(envelope_of).sender  # it was sent: it is valid
        raise smtplib_compatible(failure, sender=sender)

    async def _run(self, driver: Driver[T]) -> T:
        """Perform ``driver``'s requests and return its result."""
        return await self._drive(driver, Step())

    async def _drive(self, driver: Driver[T], step: Step) -> T:
        """Perform ``driver``'s requests, starting with what ``step`` holds for it; drop
        the transport when the session breaks or the exchange is cut short."""
        session = self.session
        answer, thrown, ended = step.answer, step.error, step.ended
        step.answer = step.error = step.ended = None
        request: Request | None = None
        while True:
            if request is None:
                try:
                    if ended is not None:
                        raise ended
                    request = driver.send(answer) if thrown is None else driver.throw(thrown)
                except StopIteration as stop:
                    result: T = stop.value
                    if not session.usable:  # the driver ended the session on purpose
                        await self.aclose()
                    return result
                except BaseException:
                    if not session.usable:
                        await self._drop()
                    raise
                answer = thrown = None
            try:
                if type(request) is Write:
                    request = await self._send(request, driver, step)
                    if request is None and (step.error is not None or step.ended is not None):
                        thrown, ended = step.error, step.ended  # how a burst of writes ended
                        step.error = step.ended = None
                elif type(request) is Read:
                    if not request.resume:  # a new reply wait: a new deadline when it waits
                        self._wait_deadline = None
                    answer = await self._read(request.timeout)
                    request = None
                else:
                    assert type(request) is UpgradeTLS
                    answer = await self._start_tls(request)
                    request = None
            except (SMTPTLSError, ProtocolError) as exc:
                thrown, request = exc, None
            except BaseException as exc:
                error = self._thrown(exc)
                if error is not None:
                    thrown, request = error, None
                elif self._cut_by_deadline():  # ``_run`` sees whether it was only that
                    step.cut_short = True
                    raise
                else:  # a cancellation, KeyboardInterrupt: cut short, never reused
                    driver.close()
                    await self._drop()
                    raise

    async def _start_tls(self, request: UpgradeTLS) -> ChannelBinding | None:
        """Perform ``request``: handshake, record ``tls_info``, return the binding."""
        started = self._clock()
        tls = await self._handshake(request.server_hostname, request.timeout)
        return self._tls_up(tls, started)


async def send_in_one_call(
    client_class: Callable[..., AsyncClientBase],
    message: Message | ContentSource,
    *,
    host: str,
    port: int | None = None,
    username: str | None = None,
    password: str | None = None,
    token: AsyncTokenSource | None = None,
    mechanism: ClientMechanism | None = None,
    sender: str | None = None,
    recipients: str | Iterable[str] | None = None,
    options: MailOptions | None = None,
    **client_options: Unpack[ClientOptions],
) -> TransactionResult:
    """Send one message in one call: connect to ``host`` (``port``: by default 465
    implicit TLS, 587 STARTTLS required, else 25 opportunistic; or ``tls=``), log in
    when ``username`` is given (``password``, or ``token``: an OAuth 2.0 token or a
    provider of fresh ones), send ``message`` (an ``email.message`` message, or
    content with ``sender`` and ``recipients``), QUIT. ``client_options``
    (``ClientOptions``: ``ssl_context``, ``timeout``, ...) go to ``{client}``; a
    misspelt one is a caller mistake. Returns the per-recipient result; raises what the
    client raises.

    Missing credentials or envelope and unknown options are refused before connecting,
    a bad address or option before any command of the transaction (then QUIT); the
    client is closed whatever happens.
    """
    check_client_options(client_options)
    if (password is not None or token is not None) and username is None:
        raise usage_error("a password or token needs a username")
    if username is not None and password is None and token is None:
        raise usage_error("a username needs a password or token")
    if not isinstance(message, Message) and (sender is None or recipients is None):
        raise usage_error("content that is no email message needs sender= and recipients=")
    async with client_class(host, port, **client_options) as client:
        if username is not None:
            await client.login(username, password, token=token, mechanism=mechanism)
        if isinstance(message, Message):
            return await client.send_message(
                message, sender=sender, recipients=recipients, options=options
            )
        assert sender is not None and recipients is not None
        return await client.sendmail(sender, recipients, message, options=options)


def one_call_send(
    template: Callable[Concatenate[type[C], P], Awaitable[TransactionResult]],
    client_class: type[C],
) -> Callable[P, Awaitable[TransactionResult]]:
    """The public one-call ``send`` of the adapter whose client is ``client_class``:
    ``template`` (``send_in_one_call``) with the client class bound, under the
    adapter's module, with ``template``'s signature (less ``client_class``) and
    docstring (naming the class). Written once, so the adapters cannot drift apart;
    mypy checks each call against ``template``'s parameters."""

    async def send(*args: P.args, **kwargs: P.kwargs) -> TransactionResult:
        return await template(client_class, *args, **kwargs)

    full = signature(template)
    send.__signature__ = full.replace(  # type: ignore[attr-defined]  # read by inspect
        parameters=list(full.parameters.values())[1:]
    )
    send.__annotations__ = {
        name: kind for name, kind in template.__annotations__.items() if name != "client_class"
    }
    send.__doc__ = (template.__doc__ or "").replace("{client}", client_class.__name__)
    send.__module__ = client_class.__module__
    send.__name__ = send.__qualname__ = "send"
    return send


def _compatible_outcomes(outcomes: list[Outcome]) -> list[Outcome]:
    """``send_many``'s outcomes with each error as its smtplib-compatible twin."""
    return [
        outcome if type(outcome) is TransactionResult else smtplib_compatible(outcome)
        for outcome in outcomes
    ]
