"""``LineReader``: command lines out of the server's input buffer, with bounded memory.

A command line ends only at CRLF (RFC 5321 §2.3.8): a bare CR or LF inside stays in
the line (the connection refuses it as a syntax error). A line longer than its limit
(512 octets, RFC 5321 §4.5.3.1.4; more for MAIL/RCPT and AUTH) is reported once as
``TOO_LONG`` as soon as the limit is crossed, and the rest of it is dropped as it
arrives, so the buffer never holds more than one limit's worth of a line.
"""

from __future__ import annotations

from typing import Final

from ..wire.abnf import MAX_COMMAND_LINE
from .config import ServerConfig

__all__ = ["TOO_LONG", "LineReader"]

#: What ``LineReader.read`` returns, once, for a line over its limit.
TOO_LONG: Final = object()
#: No limit is below RFC 5321's 512 octets (``ServerConfig`` checks): a line within it
#: needs no look at its verb.
_SHORTEST = MAX_COMMAND_LINE


class LineReader:
    """Splits ``buf`` into lines; the connection appends input to ``buf`` and takes
    DATA and BDAT content from it directly."""

    __slots__ = ("buf", "crossed", "discarding", "scan")

    def __init__(self) -> None:
        #: Input not consumed yet (never replaced: the connection holds it too).
        self.buf = bytearray()
        #: Where the CRLF search resumes; True while the rest of a too-long line is
        #: being dropped.
        self.scan = 0
        self.discarding = False
        #: The limit the last ``TOO_LONG`` line crossed (its reply names it: the line
        #: is gone by then, and with it the verb the limit depended on).
        self.crossed = _SHORTEST

    def limit(self, config: ServerConfig, auth_response: bool) -> int:
        """The length limit of the next line, CRLF included (RFC 5321 §4.5.3.1.4; RFC
        4954 §4 for AUTH, RFC 1870 and friends for MAIL/RCPT parameters)."""
        if auth_response:
            return config.max_auth_line
        head = bytes(self.buf[:5]).upper()
        if head in (b"MAIL ", b"RCPT "):
            return config.max_mail_rcpt_line
        if head == b"AUTH ":
            return config.max_auth_line
        return config.max_command_line

    def read(self, config: ServerConfig, auth_response: bool) -> bytes | object | None:
        """One line without its CRLF, ``TOO_LONG`` once per line over its ``limit``,
        or None. The limit is worked out only for a line longer than the shortest."""
        buf = self.buf
        if self.discarding:
            end = buf.find(b"\r\n")
            if end < 0:
                del buf[: len(buf) - 1 if buf.endswith(b"\r") else len(buf)]
                return None
            del buf[: end + 2]
            self.discarding = False
            self.scan = 0
        end = buf.find(b"\r\n", self.scan)
        if end < 0:
            size = len(buf)
            if size >= _SHORTEST and size >= (limit := self.limit(config, auth_response)):
                # the CRLF cannot come within the limit any more
                self.crossed = limit
                del buf[: size - 1 if buf.endswith(b"\r") else size]
                self.scan = 0
                self.discarding = True
                return TOO_LONG
            self.scan = max(0, size - 1)
            return None
        # the limit depends on the verb: worked out before the line leaves the buffer
        limit = self.limit(config, auth_response) if end + 2 > _SHORTEST else _SHORTEST
        line = bytes(buf[:end])
        del buf[: end + 2]
        self.scan = 0
        if end + 2 > limit:
            self.crossed = limit
            return TOO_LONG
        return line

    def drop(self) -> int:
        """Forget everything buffered (STARTTLS, RFC 3207 §4); how many octets."""
        dropped = len(self.buf)
        self.buf.clear()
        self.scan = 0
        self.discarding = False
        return dropped
