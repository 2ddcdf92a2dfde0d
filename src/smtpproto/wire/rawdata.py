"""The one rule raw DATA content keeps: it can never end the DATA early.

Raw content (``RawContent``, ``sendmail(..., raw=True)``) is for testing how servers
and filters read the DATA stream: its octets go out exactly as given, with no line-end
normalisation (RFC 5321 §2.3.8) and no dot-stuffing (§4.5.2), so bare CR, bare LF, NUL,
8-bit octets, long lines and lines such as ``\\n.\\n`` or ``\\r.\\r`` reach the server
as they are (SMTP smuggling probes). What it may not hold is the end of data itself,
``CRLF . CRLF`` (§4.1.1.4; a ``.`` line at the very start counts: the 354 ends a line):
a conforming server would end the message there and read the rest as commands,
desynchronising the client. ``RawDataGuard`` finds it across chunk boundaries and
writes the end of data the client owns (``CRLF . CRLF``, or ``. CRLF`` after a CRLF),
refusing content whose last line would make that end come one line early.
"""

from __future__ import annotations

from .errors import LocalProtocolError

__all__ = ["END_OF_DATA", "RawDataGuard"]

#: RFC 5321 §4.1.1.4: the mail data ends with a line holding only ".".
END_OF_DATA = b"\r\n.\r\n"


class RawDataGuard:
    """Checks raw DATA content chunk by chunk (``feed``) and makes its end (``end``).

    ``feed`` raises ``LocalProtocolError`` naming the content offset of the ``.`` of an
    end-of-data line, before that chunk is used; ``end`` raises when the content's last
    line is a lone ``.`` without its CRLF (the end of data would then come one line
    early). ``octets`` counts the content fed; ``eight_bit`` tells whether an octet
    above 127 was seen (8BITMIME, RFC 6152).
    """

    __slots__ = ("_tail", "eight_bit", "octets")

    def __init__(self) -> None:
        # The content starts at a line start: the 354 reply ended the previous line.
        self._tail = b"\r\n"
        self.octets = 0
        self.eight_bit = False

    def feed(self, chunk: bytes) -> bytes:
        """Check ``chunk`` (the next content octets) and return it unchanged."""
        window = self._tail + chunk
        found = window.find(END_OF_DATA)
        if found != -1:
            dot = self.octets - len(self._tail) + found + 2
            raise LocalProtocolError(
                f"raw content holds the end of data (a line '.', CRLF . CRLF) at content "
                f"octet {dot}: it would end the DATA there and the rest would be read as "
                "commands (RFC 5321 §4.1.1.4); raw content never ends the DATA early, the "
                "client writes the end of data itself"
            )
        self._tail = window[-4:]
        self.octets += len(chunk)
        self.eight_bit = self.eight_bit or not chunk.isascii()
        return chunk

    def end(self) -> bytes:
        """The end of data to write after the content: ``. CRLF`` when the content ended
        with CRLF (or is empty), else ``CRLF . CRLF``."""
        end = b".\r\n" if self._tail.endswith(b"\r\n") else END_OF_DATA
        window = self._tail + end
        if window.find(END_OF_DATA) != len(window) - len(END_OF_DATA):
            raise LocalProtocolError(
                "raw content ends with a line '.' without its CRLF: the end of data would "
                "make it end the DATA one line early (RFC 5321 §4.1.1.4); the client "
                "writes the end of data itself, so leave that line out"
            )
        return end
