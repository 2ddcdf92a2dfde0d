"""Message content from files, streamed: ``send --data FILE|-`` (a prepared message as
is) and the body of ``send --body-file PATH`` (headers first, then the file).

CLI layer. Nothing here holds a whole file in memory: a file is read in ``CHUNK``
octets twice — once by ``scan`` before connecting (so every refusal the content would
meet comes before the first byte is sent: not UTF-8, a NUL, a line over 998 octets)
and once while sending. Standard input cannot be read twice, so it is spooled to a
temporary file while it is scanned (``tempfile.SpooledTemporaryFile``: the first
``CHUNK`` octets in memory, the rest on disk).

The SMTP codec itself (``wire``) turns bare LF and CR into CRLF and dot-stuffs, as
swaks' default "data fixup" does (RFC 5321 §2.3.8, §4.5.2). ``--data`` with
``--no-data-fixup`` is raw content (``sendmail(raw=True)``): the scan then also runs
``wire.rawdata``'s guard, so a file holding the end of data is refused before
connecting, and standard input is spooled to a real temporary file (the library reads
raw content twice, and ``SpooledTemporaryFile`` is not seekable before Python 3.11).

``--body-file`` bodies are sent as ``text/plain; charset="utf-8"`` with the
Content-Transfer-Encoding the scan allows (RFC 2045 §6, RFC 6152): ``7bit`` when all
ASCII, ``8bit`` when UTF-8 with lines of at most 998 octets, else ``base64`` (encoded
while streaming, 76-character lines).
"""

from __future__ import annotations

import base64
import codecs
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Literal

from ..wire.errors import LocalProtocolError
from ..wire.rawdata import RawDataGuard
from .common import CLIError, ExitCode, quote

__all__ = [
    "CHUNK",
    "MAX_LINE",
    "Content",
    "ContentFacts",
    "base64_size",
    "body_chunks",
    "open_content",
    "scan",
]

#: Octets read at a time (and the in-memory part of spooled standard input).
CHUNK = 64 * 1024
#: RFC 5321 §4.5.3.1.6: a text line is at most 998 octets without its CRLF.
MAX_LINE = 998
#: base64 input per output line: 57 octets make one 76-character line (RFC 2045 §6.8).
_B64_LINE = 57


@dataclass(frozen=True, slots=True)
class ContentFacts:
    """What ``scan`` found: the size in octets, whether an octet is >= 0x80 or NUL,
    the longest line (octets without its line end) and whether it is UTF-8."""

    size: int
    eight_bit: bool
    nul: bool
    longest_line: int
    utf8: bool

    @property
    def transfer_encoding(self) -> Literal["7bit", "8bit", "base64"]:
        """The Content-Transfer-Encoding for this as a text/plain UTF-8 body."""
        if self.nul or self.longest_line > MAX_LINE:
            return "base64"
        return "8bit" if self.eight_bit else "7bit"


@dataclass(slots=True)
class Content:
    """What ``send`` sends after DATA: ``head`` (a whole message, or the headers of a
    streamed body) then ``body`` read from a file in ``encoding``; ``size`` is the
    total in octets before the SMTP codec (for SIZE, RFC 1870, and the progress bar),
    ``eight_bit`` whether any octet is >= 0x80 (needs 8BITMIME, RFC 6152); ``raw``:
    ``body`` is raw DATA content, sent as the seekable file it is."""

    head: bytes
    size: int
    eight_bit: bool
    body: IO[bytes] | None = None
    encoding: Literal["7bit", "8bit", "base64"] = "8bit"
    raw: bool = False

    def source(self) -> bytes | IO[bytes] | Iterator[bytes]:
        """What ``sendmail`` sends: ``head`` alone, the raw file, or the pieces of head
        and body."""
        if self.body is None:
            return self.head
        return self.body if self.raw else self._chunks(self.body)

    def _chunks(self, body: IO[bytes]) -> Iterator[bytes]:
        if self.head:
            yield self.head
        yield from body_chunks(body, self.encoding)

    def close(self) -> None:
        if self.body is not None:
            self.body.close()


def scan(
    stream: IO[bytes], copy: IO[bytes] | None = None, guard: RawDataGuard | None = None
) -> ContentFacts:
    """Read ``stream`` to its end in ``CHUNK`` pieces (writing each to ``copy`` when
    given, feeding each to the raw content ``guard`` when given: its refusal raises
    ``LocalProtocolError``) and return its ``ContentFacts``; a line ends at CR or LF."""
    size, eight_bit, nul, longest, line = 0, False, False, 0, 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    while chunk := stream.read(CHUNK):
        if guard is not None:
            guard.feed(chunk)
        if copy is not None:
            copy.write(chunk)
        size += len(chunk)
        eight_bit = eight_bit or not chunk.isascii()
        nul = nul or b"\0" in chunk
        if utf8 and eight_bit:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                utf8 = False
        elif utf8:
            decoder.decode(chunk)
        parts = chunk.replace(b"\r", b"\n").split(b"\n")
        line += len(parts[0])
        if len(parts) > 1:
            longest = max(longest, line, *(len(part) for part in parts[1:-1]))
            line = len(parts[-1])
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    if guard is not None:
        guard.end()
    return ContentFacts(size, eight_bit, nul, max(longest, line), utf8)


def _typed(what: str) -> IO[bytes]:
    """What the user types at the terminal, up to the first Ctrl-D (a terminal's end of
    file is not sticky: ``read(n)`` would wait for a second one), after a note saying
    what the wait is for."""
    print(
        f"smtpproto: note: reading the {what.removesuffix(' file')} from the terminal; "
        "end it with Ctrl-D on a line of its own",
        file=sys.stderr,
        flush=True,
    )
    typed: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=CHUNK)  # noqa: SIM115
    for line in sys.stdin.buffer:  # readline: ends at the first end of file
        typed.write(line)
    typed.seek(0)
    return typed


def open_content(path: str, what: str, *, raw: bool = False) -> tuple[IO[bytes], ContentFacts]:
    """``path`` (``-``: standard input, spooled) opened for sending, positioned at its
    start, with its facts. A file error is a one-line usage error naming the path;
    with ``raw``, so is content that would end the DATA early (``wire.rawdata``)."""
    guard = RawDataGuard() if raw else None
    if path == "-":
        source = _typed(what) if sys.stdin.isatty() else sys.stdin.buffer
        spool: IO[bytes] = (
            tempfile.TemporaryFile()  # noqa: SIM115 -- closed by the caller
            if raw
            else tempfile.SpooledTemporaryFile(max_size=CHUNK)  # noqa: SIM115
        )
        try:
            facts = scan(source, spool, guard)
        except LocalProtocolError as error:
            spool.close()
            raise CLIError(f"the data from stdin: {error}", ExitCode.USAGE) from None
        finally:
            if source is not sys.stdin.buffer:
                source.close()
        spool.seek(0)
        return spool, facts
    try:
        file = open(path, "rb")  # noqa: SIM115 -- the caller closes it after sending
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CLIError(f"cannot read {what} {quote(path)}: {reason}", ExitCode.USAGE) from None
    try:
        facts = scan(file, guard=guard)
        file.seek(0)
    except LocalProtocolError as error:
        file.close()
        raise CLIError(f"the data from {quote(path)}: {error}", ExitCode.USAGE) from None
    except OSError as error:
        file.close()
        reason = error.strerror or type(error).__name__
        raise CLIError(f"cannot read {what} {quote(path)}: {reason}", ExitCode.USAGE) from None
    return file, facts


def body_chunks(stream: IO[bytes], encoding: Literal["7bit", "8bit", "base64"]) -> Iterator[bytes]:
    """The body from ``stream`` in the transfer encoding, ``CHUNK``-sized pieces."""
    if encoding != "base64":
        while chunk := stream.read(CHUNK):
            yield chunk
        return
    block = CHUNK - CHUNK % _B64_LINE  # a multiple of 3: no padding inside the body
    while chunk := _read_full(stream, block):
        yield base64.encodebytes(chunk)


def _read_full(stream: IO[bytes], size: int) -> bytes:
    """``size`` octets, fewer only at the end (a pipe may return short reads)."""
    parts: list[bytes] = []
    wanted = size
    while wanted and (part := stream.read(wanted)):
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def base64_size(size: int) -> int:
    """Octets ``base64.encodebytes`` makes of ``size`` octets (lines of 76 plus LF)."""
    if size == 0:
        return 0
    lines = -(-size // _B64_LINE)
    return 4 * (size // 3) + (4 if size % 3 else 0) + lines
