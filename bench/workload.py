"""The benchmark's messages: who sends to whom, and 1 KB (or any size) of content.

``make_message(size)`` builds a plain ASCII message of exactly ``size`` octets (headers,
then 78-octet lines, every tenth starting with ``.`` so dot-stuffing, RFC 5321 §4.5.2,
is exercised). ``stream_message`` yields the same bytes in 64 KiB pieces without ever
holding the whole message (for peak-memory runs). ``Workload`` is what one measured
session sends: ``count`` copies of one message over one connection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

__all__ = ["RECIPIENT", "SENDER", "Workload", "make_message", "stream_message"]

SENDER = "bench@example.test"
RECIPIENT = "sink@example.test"
PIECE = 64 * 1024
_BLOCK = (b"x" * 76 + b"\r\n") * 9 + b"." + b"y" * 75 + b"\r\n"  # 780 octets


def _header() -> bytes:
    return (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: benchmark\r\n"
        "Message-ID: <bench@example.test>\r\n\r\n"
    ).encode("ascii")


def _tail(rest: int) -> bytes:
    """The last ``rest`` octets of the body: one short line (``rest`` is 0 or >= 2)."""
    return b"z" * (rest - 2) + b"\r\n" if rest >= 2 else b""


def make_message(size: int) -> bytes:
    """A plain ASCII message of exactly ``size`` octets with CRLF line ends."""
    header = _header()
    body_size = size - len(header)
    if body_size < 2:
        raise ValueError(f"a message needs at least {len(header) + 2} octets")
    blocks, rest = divmod(body_size, len(_BLOCK))
    if rest == 1:  # one octet cannot be a line of its own: widen the last full line
        body = _BLOCK * (blocks - 1) + _BLOCK[:-2] + b"z\r\n"
    else:
        body = _BLOCK * blocks + _tail(rest)
    message = header + body
    if len(message) != size:
        raise ValueError(f"cannot make a message of exactly {size} octets")
    return message


def stream_message(size: int) -> Iterator[bytes]:
    """``make_message(size)`` in pieces of about ``PIECE`` octets, never held whole.

    Sizes whose body leaves a one-octet remainder are refused (``ValueError``) before
    anything is yielded, like ``make_message`` refuses the sizes it cannot make.
    """
    header = _header()
    blocks, rest = divmod(size - len(header), len(_BLOCK))
    if rest == 1 or size - len(header) < 2:
        raise ValueError(f"stream_message cannot make {size} octets; use another size")
    return _pieces(header, blocks, rest)


def _pieces(header: bytes, blocks: int, rest: int) -> Iterator[bytes]:
    yield header
    per_piece = max(1, PIECE // len(_BLOCK))
    piece = _BLOCK * per_piece
    for _ in range(blocks // per_piece):
        yield piece
    yield _BLOCK * (blocks % per_piece)
    yield _tail(rest)


@dataclasses.dataclass(frozen=True)
class Workload:
    """``count`` copies of ``message`` from ``sender`` to ``recipients``, one connection."""

    count: int
    message: bytes
    sender: str = SENDER
    recipients: tuple[str, ...] = (RECIPIENT,)

    @classmethod
    def of_size(cls, count: int, size: int) -> Workload:
        return cls(count, make_message(size))

    @property
    def size(self) -> int:
        return len(self.message)

    @property
    def header_size(self) -> int:
        """Octets up to and including the empty line that ends the header."""
        return self.message.index(b"\r\n\r\n") + 4
