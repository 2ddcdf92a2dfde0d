"""A seekable file's content read once before MAIL, then sent as it was read.

Content held whole is checked and counted before MAIL (``mail.check_content``,
``support.canonical_size``); a file is only read as it is sent. For a seekable binary
file (``seekable()`` true, ``tell``/``seek`` working) ``scan_file`` reads it once from
where it stands, in chunks of the driver's ``chunk_size`` (memory stays one chunk
whatever the file's length), and seeks back:

- its SIZE= as it will be sent: bare CR and LF counted as CRLF and a final CRLF added
  (RFC 1870 §3, RFC 5321 §2.3.8), measured by the DATA codec's own
  ``LineEndNormalizer`` (the rules ``support.canonical_size`` counts, faster than
  counting line ends in Python for a large file), not its length on disk, which
  undercounts a file with bare LF line ends: the server refused such a file with 552
  only after the whole transfer;
- whether it is 8-bit (BODY=8BITMIME, RFC 6152, decided by its octets as for content
  held whole);
- the refusal of the DATA encoder for the message (a NUL, a line over 998 octets, 8-bit
  octets without BODY=8BITMIME; RFC 3030 §3 holds BDAT content to the same rules), so
  that it is refused before MAIL, nothing sent, as content held whole is.

``ScannedFile.chunks`` then reads it again for sending, and checks that it is the
same file: the octets read again must have the scanned length and CRC-32. A file
changed in between (rewritten, grown, truncated) raises ``LocalProtocolError`` when
its end is read, which the drivers do before they send its last chunk: with DATA the
end of data is then never sent (nothing is delivered, the session is closed), with BDAT
``BDAT LAST`` is never sent (RSET ends the transaction; a file of one chunk is refused
before MAIL) -- so a changed file is never delivered silently, nor under a SIZE=
that no longer counts it. A file that grows is stopped as soon as it passes its
scanned length.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from ..wire.datacodec import DataEncoder, LineEndNormalizer
from ..wire.errors import LocalProtocolError
from .support import _file_chunks, _Readable

__all__ = ["ScannedFile", "scan_file"]


@dataclasses.dataclass(frozen=True, slots=True)
class ScannedFile:
    """What ``scan_file`` learned of a file, read from ``start`` to its end."""

    file: Any
    start: int
    #: Octets read (the length from ``start``; the ``progress`` total).
    length: int
    #: The octets sent for it, CRLF line ends and a final CRLF counted (RFC 1870 §3).
    size: int
    #: No octet above 0x7F (no BODY=8BITMIME needed, RFC 6152).
    ascii: bool
    #: ``zlib.crc32`` of the octets read: the same file when it is sent.
    checksum: int
    #: The DATA encoder's refusal for the content under the rules the scan used (None:
    #: none), to raise before MAIL.
    refusal: str | None

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        """The file from ``start`` again, in chunks of at most ``chunk_size`` octets;
        ``LocalProtocolError`` when what is read differs from what was scanned (raised
        before the chunk that goes past the scanned length, or at the end)."""
        self.file.seek(self.start)
        read = 0
        checksum = 0
        for chunk in _file_chunks(self.file, chunk_size):
            read += len(chunk)
            if read > self.length:
                raise _changed(f"it grew past the {self.length} octets checked")
            checksum = zlib.crc32(chunk, checksum)
            yield chunk
        if read != self.length or checksum != self.checksum:
            what = "its content" if read == self.length else f"{read} octets, not {self.length}"
            raise _changed(f"{what} changed")


def seekable_start(content: object) -> int | None:
    """Where a seekable file ``content`` stands (its content is read from there), or
    None when it is no seekable file (an iterable, a pipe, a socket file)."""
    seekable = getattr(content, "seekable", None)
    read = getattr(content, "read", None)
    if not callable(seekable) or not callable(read):
        return None
    try:
        if not seekable():
            return None
        position = content.tell()  # type: ignore[attr-defined]  # seekable: has tell
    except (AttributeError, OSError, ValueError):
        return None
    return position if isinstance(position, int) else None


def scan_file(
    file: _Readable, start: int, chunk_size: int, encoder: Callable[[], DataEncoder]
) -> ScannedFile:
    """Read ``file`` from ``start`` to its end once (``chunk_size`` octets at a time),
    then seek back to ``start``. ``encoder`` makes the DATA encoder whose rules the
    content must keep; its first refusal ends the reading (the message is refused
    anyway) and is kept as ``refusal``. A read that fails, or gives text, raises
    ``LocalProtocolError`` (``support._file_chunks``), as does a failing seek."""
    rules = encoder()
    ends = LineEndNormalizer()
    checksum = 0
    ascii_only = True
    refusal = None
    for chunk in _file_chunks(file, chunk_size):
        try:
            rules.feed(chunk)
        except LocalProtocolError as error:
            refusal = str(error)
            break
        ends.feed(chunk)
        checksum = zlib.crc32(chunk, checksum)
        ascii_only = ascii_only and chunk.isascii()
    ends.finish()
    try:
        file.seek(start)  # type: ignore[attr-defined]  # seekable_start said it is
    except (OSError, ValueError) as error:
        raise LocalProtocolError(f"the content file cannot be read again: {error}") from None
    return ScannedFile(file, start, ends.octets_in, ends.octets_out, ascii_only, checksum, refusal)


def _changed(what: str) -> LocalProtocolError:
    return LocalProtocolError(
        f"the content file changed after it was checked before MAIL: {what}; the end of "
        "the content was not sent, so nothing of it is delivered"
    )
