"""The raw pipelined-socket floor: the least a pure-Python SMTP client can do per message.

The reference the issue measures smtpproto's ``send_many`` against. A blocking socket,
no library: after EHLO the envelope (``MAIL``, ``RCPT``, ``DATA``) goes out in one write;
then, per message, the dot-stuffed content, ``.`` and the *next* message's envelope go
in one write (RFC 2920 §3.1: DATA ends a group, and the content may only follow its
354), so each message costs one round trip. A 20-line reply reader splits replies at
the last line of each (``NNN`` SP, RFC 5321 §4.2.1) and checks each code against the
expected one; it trusts the peer otherwise (no line limits, no grammar checks) — a
floor, not a client anyone should use.

Per message it does what any client must: dot-stuff the caller's content
(``bytes.replace``; the content is given with CRLF line ends, as ``make_message``
builds it), write, and read and check four replies.
"""

from __future__ import annotations

import socket

__all__ = ["FloorError", "deliver"]

_OK, _START = b"250", b"354"


class FloorError(Exception):
    """The peer answered something else than the floor expects (or hung up)."""


class _Replies:
    """Reads replies off the socket; ``expect`` returns once the expected codes came."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def expect(self, *codes: bytes) -> None:
        buffer, start = self._buffer, 0
        got: list[bytes] = []
        while len(got) < len(codes):
            end = buffer.find(b"\r\n", start)
            if end < 0:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise FloorError(f"connection closed; replies so far {got!r}")
                buffer, start = buffer[start:] + chunk, 0
                continue
            if end - start < 4 or buffer[start + 3] == 0x20:  # the last line of a reply
                got.append(buffer[start : start + 3])
            start = end + 2
        self._buffer = buffer[start:]
        if got != list(codes):
            raise FloorError(f"expected {codes!r}, got {got!r}")


def deliver(host: str, port: int, sender: str, recipient: str, message: bytes, count: int) -> None:
    """Send ``count`` copies of ``message`` (CRLF line ends) over one connection, QUIT."""
    if count < 1:
        raise ValueError("the floor sends at least one message")
    envelope = f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        replies = _Replies(sock)
        replies.expect(b"220")
        sock.sendall(b"EHLO floor.example\r\n")
        replies.expect(_OK)
        sock.sendall(envelope)
        replies.expect(_OK, _OK, _START)
        for left in range(count - 1, -1, -1):
            content = message.replace(b"\r\n.", b"\r\n..")
            if content.startswith(b"."):
                content = b"." + content
            if not content.endswith(b"\r\n"):
                content += b"\r\n"
            sock.sendall(content + b".\r\n" + (envelope if left else b"QUIT\r\n"))
            if left:
                replies.expect(_OK, _OK, _OK, _START)
        replies.expect(_OK, b"221")
