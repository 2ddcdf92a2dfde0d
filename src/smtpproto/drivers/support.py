"""Helpers of the session drivers (``drivers.session``): content sources, MAIL options,
and the small decisions adapters delegate (TLS policy from the port, default port,
timeouts, the EHLO name, the logging transcript). BDAT line ends are made CRLF by the
DATA codec's ``LineEndNormalizer`` (``wire.datacodec``).

Engine layer: no I/O, no clock. Content is never held whole: every source becomes an
iterator of chunks of at most ``chunk_size`` octets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, Literal, Protocol, TypeVar

from ..client_engine.commands import Mail, Rcpt
from ..client_engine.config import ClientConfig, Timeouts, TLSPolicy, TranscriptHook
from ..wire.errors import LocalProtocolError
from ..wire.fields import check_flag, check_int, check_seconds
from ..wire.text import escape_text
from .exceptions import SMTPProtocolError

__all__ = [
    "BDAT_WINDOW",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAIL_OPTIONS",
    "MAX_READAHEAD",
    "ContentSource",
    "Driver",
    "MailOptions",
    "MessageDeadlinePassed",
    "ProgressCallback",
    "Read",
    "Request",
    "SizeCounter",
    "UpgradeTLS",
    "Write",
    "all_ascii",
    "canonical_size",
    "check_connect_options",
    "check_server_hostname",
    "content_chunks",
    "default_port",
    "default_tls_policy",
    "hello_name",
    "logging_transcript",
    "make_timeouts",
    "session_config",
    "utf8",
]

T = TypeVar("T")

#: RFC 8314 §3.3: submission over implicit TLS; RFC 6409 §3.1: submission with STARTTLS.
_IMPLICIT_PORTS = frozenset({465})
_SUBMISSION_PORTS = frozenset({587})

#: Octets read from a file (or sliced from bytes) per content write: large enough that
#: per-write overhead vanishes, small enough that memory stays flat for any message.
DEFAULT_CHUNK_SIZE = 64 * 1024
#: Octets an adapter may buffer from the server while it writes (RFC 2920 §3.2). A
#: reply is at most ``DEFAULT_MAX_REPLY_BYTES``; 1 MiB holds thousands of pipelined
#: RCPT replies.
MAX_READAHEAD = 1024 * 1024
#: BDAT chunks (RFC 3030) sent ahead of their replies when pipelining.
BDAT_WINDOW = 8


@dataclasses.dataclass(frozen=True, slots=True)
class Write:
    """Write all of ``data``; the adapter sends back None."""

    data: bytes
    timeout: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class Read:
    """Read at least one octet (``b""`` on EOF) within ``timeout`` seconds.

    ``resume`` is True when the previous ``Read`` brought bytes that did not complete
    what the engine waits on: the wait goes on under the deadline it started with, so
    a server trickling a reply never extends its RFC 5321 §4.5.3.2 timer (one timer
    per command, not per read). The adapter computes deadlines; the engine and the
    drivers read no clock.
    """

    timeout: float | None
    resume: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class UpgradeTLS:
    """Run the TLS handshake within ``timeout`` seconds; send back a ``ChannelBinding``
    or None."""

    server_hostname: str | None
    timeout: float | None


class MessageDeadlinePassed(TimeoutError):
    """What an adapter throws into a driver when the per-message deadline
    (``message_timeout``, ``seconds`` long), not the request's own RFC 5321 §4.5.3.2
    timeout, ended the wait: the driver's ``SMTPTimeoutError`` then names that
    deadline, not the step's timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the message deadline of {seconds:g} s passed")
        self.seconds = seconds


Request = Write | Read | UpgradeTLS
#: What every operation is: a generator of requests returning the operation's result.
Driver = Generator[Request, Any, T]


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


ContentSource = bytes | bytearray | memoryview | str | _Readable | Iterable[bytes]
ProgressCallback = Callable[[int, "int | None"], None]


def default_tls_policy(
    tls: TLSPolicy | Literal["none", "opportunistic", "required", "implicit"] | None,
    port: int | None,
) -> TLSPolicy:
    """The TLS policy for ``tls`` (a ``TLSPolicy`` or its value), or from the port.

    Port 465 means implicit TLS (RFC 8314 §3.3), 587 STARTTLS required (RFC 8314 §3.3,
    RFC 6409); any other port opportunistic STARTTLS. An unknown name is a
    ``LocalProtocolError``.
    """
    if tls is None:
        if port in _IMPLICIT_PORTS:
            return TLSPolicy.IMPLICIT
        if port in _SUBMISSION_PORTS:
            return TLSPolicy.REQUIRED
        return TLSPolicy.OPPORTUNISTIC
    if isinstance(tls, TLSPolicy):
        return tls
    try:
        return TLSPolicy(tls)
    except ValueError:
        raise LocalProtocolError(
            f"tls must be one of none, opportunistic, required, implicit; got {tls!r}"
        ) from None


def default_port(policy: TLSPolicy, lmtp: bool = False) -> int:
    """465 for implicit TLS, 587 when STARTTLS is required, 25 otherwise (24 for LMTP,
    RFC 2033 §5: LMTP must not use port 25)."""
    if policy is TLSPolicy.IMPLICIT:
        return 465
    if policy is TLSPolicy.REQUIRED:
        return 587
    return 24 if lmtp else 25


def check_connect_options(
    host: str | None, port: int | None, message_timeout: float | None
) -> None:
    """Refuse, with ``LocalProtocolError``, what an adapter's constructor cannot use: a
    ``port`` that is no integer in 0-65535, a ``host`` with a NUL or other control
    character, a ``message_timeout`` that is not a positive number (NaN, infinity,
    zero, negative or a string would otherwise surface later as an unrelated exception
    or no limit at all)."""
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
    ):
        raise LocalProtocolError(f"port must be an integer in 0-65535, got {port!r}")
    if host is not None and (
        not isinstance(host, str) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in host)
    ):
        raise LocalProtocolError(f"host must be a name or address, got {host!r}")
    if message_timeout is not None and (
        isinstance(message_timeout, bool)
        or not isinstance(message_timeout, (int, float))
        or not 0 < message_timeout < float("inf")
    ):
        raise LocalProtocolError(
            f"message_timeout must be a positive number of seconds or None, got {message_timeout!r}"
        )


def check_server_hostname(name: str) -> None:
    """Refuse, with ``LocalProtocolError``, a TLS ``server_hostname`` that ``ssl`` would
    refuse only at the handshake, after the greeting and EHLO, with a ``ValueError``
    (empty, leading dot), ``TypeError`` (NUL) or ``UnicodeError`` (not IDNA-encodable,
    e.g. a label over 63 octets, RFC 1035 §2.3.4): ``ssl`` encodes it with the
    ``idna`` codec."""
    problem = None
    if not isinstance(name, str):
        problem = "is not a str"
    elif not name or name.startswith("."):
        problem = "is empty or starts with a dot"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        problem = "contains a control character"
    else:
        try:
            name.encode("idna")
        except UnicodeError as error:
            problem = f"is no valid host name ({error})"
    if problem is not None:
        raise LocalProtocolError(f"server_hostname {problem}: {name!r}")


def make_timeouts(timeout: Timeouts | float | None) -> Timeouts:
    """``Timeouts`` from a ``Timeouts`` value, one number for every wait, or None (the
    RFC 5321 §4.5.3.2 defaults)."""
    if timeout is None:
        return Timeouts()
    if isinstance(timeout, Timeouts):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise LocalProtocolError(f"timeout must be a number or Timeouts, got {timeout!r}")
    check_seconds("timeout", timeout, error=LocalProtocolError)
    value = float(timeout)
    names = [field.name for field in dataclasses.fields(Timeouts)]
    return Timeouts(**dict.fromkeys(names, value))


def hello_name(local_hostname: str | None, local_address: str | None) -> str:
    """The EHLO argument: ``local_hostname`` if given, else an address literal of the
    local IP (RFC 5321 §4.1.3: ``[192.0.2.1]``, ``[IPv6:2001:db8::1]``), else
    ``localhost`` (unix sockets, socket pairs)."""
    if local_hostname is not None:
        return local_hostname
    if local_address:
        address = local_address.split("%", 1)[0]  # drop an IPv6 zone index
        if ":" in address:
            return f"[IPv6:{address}]"
        if address.replace(".", "").isdigit():
            return f"[{address}]"
    return "localhost"


def logging_transcript() -> TranscriptHook | None:
    """A transcript hook logging every line at DEBUG to ``smtpproto.transcript`` as
    ``"C: line"`` (sent) or ``"S: line"`` (received); None when that logger is not
    enabled for DEBUG when the session starts (the engine then skips the work).

    The engine has already redacted AUTH secrets and summarised content; control
    characters are escaped here (docs/design.md §4 rules 11-12). ``logging`` is imported
    only when this is called (adapters call it), so ``import smtpproto`` stays free
    of ``threading``.
    """
    import logging  # here, not at the top: logging imports threading

    logger = logging.getLogger("smtpproto.transcript")
    if not logger.isEnabledFor(logging.DEBUG):
        return None

    def hook(direction: Literal["C", "S"], line: bytes) -> None:
        text = escape_text(line.decode("utf-8", "backslashreplace"))
        logger.debug("%s: %s", direction, text)

    return hook


def session_config(
    *,
    tls: TLSPolicy | Literal["none", "opportunistic", "required", "implicit"] | None,
    port: int | None,
    timeout: Timeouts | float | None,
    lmtp: bool,
    allow_cleartext_auth: bool,
    config: ClientConfig | None,
) -> ClientConfig:
    """The ``ClientConfig`` an adapter's constructor arguments mean: ``config`` (or the
    defaults) with the TLS policy (``default_tls_policy``), timeouts (``make_timeouts``;
    ``config``'s own when ``timeout`` is None), LMTP, cleartext AUTH and, unless
    ``config`` has one, the logging transcript."""
    base = config if config is not None else ClientConfig()
    return dataclasses.replace(
        base,
        tls_policy=default_tls_policy(tls, port)
        if tls is not None or config is None
        else base.tls_policy,
        timeouts=make_timeouts(timeout) if timeout is not None else base.timeouts,
        lmtp=lmtp or base.lmtp,
        allow_cleartext_auth=allow_cleartext_auth or base.allow_cleartext_auth,
        transcript=base.transcript if base.transcript is not None else logging_transcript(),
    )


def content_chunks(content: ContentSource, chunk_size: int) -> tuple[Iterator[bytes], int | None]:
    """An iterator over ``content`` in chunks of at most ``chunk_size`` octets (iterable
    chunks larger than that are split), and the total size when known."""
    if type(content) is bytes and len(content) <= chunk_size:  # a small message, as is
        return iter((content,) if content else ()), len(content)
    if isinstance(content, str):
        content = utf8(content)
    if isinstance(content, (bytes, bytearray, memoryview)):
        view = _octets(content)
        total = len(view)
        return (bytes(view[i : i + chunk_size]) for i in range(0, total, chunk_size)), total
    read = getattr(content, "read", None)
    if callable(read):
        return _file_chunks(content, chunk_size), _file_size(content)  # type: ignore[arg-type]  # has read()
    if isinstance(content, Iterable):
        return _split_chunks(content, chunk_size), None
    raise LocalProtocolError(
        "content must be bytes, str, a binary file or an iterable of bytes, "
        f"got {type(content).__name__}"
    )


def utf8(text: str) -> bytes:
    """``str`` content as the UTF-8 octets sent for it. A str with no UTF-8 form (a
    lone surrogate, as ``surrogateescape`` decoding leaves for undecodable octets) is
    the caller's mistake, refused with ``LocalProtocolError`` before anything is sent."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise LocalProtocolError(
            f"str content has no UTF-8 form ({error.reason} at index {error.start}): "
            "pass the message as bytes"
        ) from None


def _octets(data: bytes | bytearray | memoryview) -> memoryview:
    """``data``'s octets as a flat view of unsigned bytes; a memoryview that is not
    C-contiguous (a strided slice, which ``cast`` refuses) is copied first, in its
    logical order, as the DATA codec twins take it (``bytes(memoryview(data))``). A
    released memoryview is the caller's mistake: ``LocalProtocolError``."""
    try:
        view = memoryview(data)
    except ValueError as error:  # "operation forbidden on released memoryview object"
        raise LocalProtocolError(f"content cannot be read: {error}") from None
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view.cast("B")


def _file_size(file: _Readable) -> int | None:
    try:
        if not file.seekable():  # type: ignore[attr-defined]  # probed; AttributeError caught
            return None
        here = file.tell()  # type: ignore[attr-defined]  # as above
        end = file.seek(0, 2)  # type: ignore[attr-defined]  # 2 is io.SEEK_END
        file.seek(here)  # type: ignore[attr-defined]  # as above
        return int(end - here)
    except (AttributeError, OSError, ValueError):
        return None


def _file_chunks(file: _Readable, chunk_size: int) -> Iterator[bytes]:
    while True:
        try:
            chunk = file.read(chunk_size)
        except OSError as error:  # the caller's file, not the connection
            raise LocalProtocolError(f"reading the content failed: {error}") from error
        if not isinstance(chunk, (bytes, bytearray)):
            raise LocalProtocolError(
                f"content file must be opened in binary mode (read() gave {type(chunk).__name__})"
            )
        if not chunk:
            return
        yield bytes(chunk)


def _split_chunks(chunks: Iterable[bytes], chunk_size: int) -> Iterator[bytes]:
    iterator = iter(chunks)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except OSError as error:  # the caller's source, not the connection
            raise LocalProtocolError(f"reading the content failed: {error}") from error
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(f"content chunks must be bytes, got {type(chunk).__name__}")
        view = _octets(chunk)
        for i in range(0, len(view), chunk_size):
            yield bytes(view[i : i + chunk_size])


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MailOptions:
    """MAIL and RCPT parameters for ``sendmail`` (see ``Mail`` and ``Rcpt``).

    ``orcpt`` True sends each recipient's own address as its DSN original recipient
    (``ORCPT=rfc822;...``, RFC 3461 §4.2), so a delivery status notification names the
    address as it was first given, whatever aliasing or forwarding rewrote it into.

    ``split_recipients`` (default True) lets ``sendmail``/``send_message`` send the
    message in several transactions when the server limits recipients per transaction:
    groups of its ``LIMITS RCPTMAX`` (RFC 9422 §4.2), and a follow-up for the recipients
    refused with ``452 4.5.3`` (RFC 5321 §4.5.3.1.10); see ``drivers.split``. False:
    one transaction, as sent (more recipients than RCPTMAX is then a
    ``LocalProtocolError``, a 452 4.5.3 a per-recipient failure).
    """

    size: int | None = None
    body: Literal["7BIT", "8BITMIME", "BINARYMIME"] | None = None
    smtputf8: bool | None = None
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    requiretls: bool = False
    mt_priority: int | None = None
    by: str | None = None
    auth: str | None = None
    notify: tuple[str, ...] | None = None
    orcpt: bool = False
    split_recipients: bool = True

    def __post_init__(self) -> None:
        """Check every field now, naming it (``wire.fields``; the parameter grammar is
        the ``Mail`` and ``Rcpt`` constructors'): a mistake is an ``SMTPProtocolError``
        (``remote`` false) here, not a surprise at the next ``sendmail``. A ``notify``
        list becomes a tuple (the value is immutable)."""
        try:
            for name in ("requiretls", "orcpt", "split_recipients"):
                check_flag(name, getattr(self, name), error=LocalProtocolError)
            check_flag("smtputf8", self.smtputf8, allow_none=True, error=LocalProtocolError)
            check_int("size", self.size, minimum=0, allow_none=True, error=LocalProtocolError)
            notify = self.notify
            if notify is not None:
                if isinstance(notify, (str, bytes)) or not isinstance(notify, (tuple, list)):
                    raise LocalProtocolError(
                        f"notify must be a tuple of str or None, got {notify!r}"
                    )
                object.__setattr__(self, "notify", tuple(notify))
            parameters = (self.size, self.body, self.ret, self.envid, self.mt_priority)
            if parameters != (None,) * 5 or (self.by, self.auth, notify) != (None,) * 3:
                Mail(
                    sender="postmaster@example.org",
                    size=self.size,
                    body=self.body,
                    ret=self.ret,
                    envid=self.envid,
                    requiretls=self.requiretls,
                    mt_priority=self.mt_priority,
                    by=self.by,
                    auth=self.auth,
                )
                Rcpt(recipient="postmaster@example.org", notify=self.notify)
        except LocalProtocolError as error:
            raise SMTPProtocolError(error) from error


#: What an operation given no ``options`` uses.
DEFAULT_MAIL_OPTIONS = MailOptions()


def canonical_size(data: bytes | bytearray | memoryview) -> int:
    """The octets ``data`` takes on the wire after its line ends are made CRLF and a
    final CRLF is added when missing (what ``DataEncoder`` and ``LineEndNormalizer``
    do, RFC 5321 §2.3.8): the SIZE= a client declares for it, which counts the CRLF
    pairs but neither stuffing dots nor the end of data (RFC 1870 §3). Declaring the
    raw length would undercount content with bare CR/LF, and the server would refuse
    it only after the whole transfer (552) instead of at MAIL. A memoryview of any
    format or shape counts its octets in logical order (``_pieces``: no whole copy)."""
    counter = SizeCounter()
    for piece in _pieces(data):
        counter.feed(piece)
    return counter.size()


class SizeCounter:
    """``canonical_size`` of content fed in pieces of any size: a CRLF split across
    two pieces is counted once, as the normaliser (``LineEndNormalizer``) makes it."""

    __slots__ = ("_crs", "_last", "_length", "_lfs", "_pairs")

    def __init__(self) -> None:
        self._length = self._crs = self._lfs = self._pairs = 0
        self._last = -1  # the last octet fed (-1: none yet)

    def feed(self, piece: bytes | bytearray) -> None:
        """Count the next piece of the content."""
        if not piece:
            return
        self._length += len(piece)
        self._crs += piece.count(b"\r")
        self._lfs += piece.count(b"\n")
        self._pairs += piece.count(b"\r\n") + (self._last == 13 and piece[0] == 10)
        self._last = piece[-1]

    def size(self) -> int:
        """The octets sent for what was fed: each bare CR or LF is one more, and a
        final CRLF is added to non-empty content not ending in a line end."""
        if self._last < 0:
            return 0
        size = self._length + self._crs + self._lfs - 2 * self._pairs
        return size if self._last in (10, 13) else size + 2


#: Octets copied at a time from a memoryview looked into (``_pieces``).
_PIECE = 1024 * 1024


def _pieces(data: bytes | bytearray | memoryview) -> Iterator[bytes | bytearray]:
    """``data``'s octets in logical order: bytes or bytearray as they are, a memoryview
    (any format, shape or strides; ``_octets``) in copies of at most ``_PIECE``
    octets, so that looking into a large view never copies it whole (a non-contiguous
    one is copied once by ``_octets``, as it is for sending)."""
    if isinstance(data, (bytes, bytearray)):
        yield data
        return
    view = _octets(data)
    for start in range(0, len(view), _PIECE):
        yield view[start : start + _PIECE].tobytes()


def all_ascii(content: object) -> bool:
    """Whether content held whole (str, bytes, bytearray, or a memoryview of any
    format, shape or strides, by its octets) has no octet above 0x7F, so that it
    needs no BODY=8BITMIME (RFC 6152). False for a file or an iterable, which are
    read only as they are sent (the caller then assumes 8-bit), and for a released
    memoryview (which ``content_chunks`` refuses)."""
    if isinstance(content, (str, bytes, bytearray)):
        return content.isascii()
    if isinstance(content, memoryview):
        try:
            return all(piece.isascii() for piece in _pieces(content))
        except LocalProtocolError:  # released
            return False
    return False
