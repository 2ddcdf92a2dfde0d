"""Memory stays bounded when the peer sends without end (docs/design.md §4 rule 2).

A server that streams a reply line without CRLF, a multiline reply without its last
line, or an EHLO reply of endless keywords must get a clear ``SMTPProtocolError`` from
every adapter after a bounded read, not a buffer growing with what it sent; the
built-in server likewise refuses a client's endless command line or AUTH response.
Peaks are measured with ``tracemalloc`` (every thread) against a flood of 32 MiB: an
unbounded buffer would hold a large part of it. Bounded in count and time: the flood
stops at its size or when the other side closes; every socket has a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .facade import SyncClient

FLOOD = 32 * 1024 * 1024
#: Far below the flood; far above what a bounded reader holds (a reply is at most
#: max_reply_bytes, 64 KiB by default, plus the adapters' read buffers).
PEAK_LIMIT = 4 * 1024 * 1024
CHUNKS = {
    "line": (b"220 ", b"A" * 65536),
    "lines": (b"", b"220-" + b"x" * 60 + b"\r\n"),
    "ehlo": (b"220 ok\r\n", b"250-X" + b"y" * 60 + b"\r\n"),
}


@contextlib.contextmanager
def _flooding_server(kind: str) -> Iterator[int]:
    """A loopback server sending ``kind``'s chunk until FLOOD octets or a close."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    first, chunk = CHUNKS[kind]
    chunk *= max(1, 65536 // len(chunk))

    def run() -> None:
        with contextlib.suppress(OSError), listener.accept()[0] as conn:
            conn.settimeout(10)
            conn.sendall(first)
            if kind == "ehlo":
                conn.recv(1024)  # the EHLO line
            for _ in range(FLOOD // len(chunk)):
                conn.sendall(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(30)
        listener.close()


def _peak(action: Callable[[], None]) -> int:
    """The peak of traced memory above its level at the start of ``action``."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        action()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", sorted(CHUNKS))
def test_an_endless_reply_is_refused_with_memory_bounded(
    make_client: Callable[..., SyncClient], kind: str
) -> None:
    errors: list[BaseException] = []

    def connect() -> None:
        with _flooding_server(kind) as port:
            client = make_client(host="127.0.0.1", port=port, tls="none", timeout=10)
            try:
                client.connect()
            except SMTPProtocolError as error:
                errors.append(error)
            finally:
                client.close()

    assert _peak(connect) < PEAK_LIMIT
    (error,) = errors
    assert "limit" in str(error)


@pytest.mark.parametrize(
    ("prelude", "limit"), [(b"", "512"), (b"EHLO c.test\r\nAUTH LOGIN\r\n", "12288")]
)
def test_the_builtin_server_refuses_an_endless_line_with_memory_bounded(
    prelude: bytes, limit: str
) -> None:
    replies: list[bytes] = []
    options = {"starttls": False, "allow_plaintext_auth": True, "users": {"alice": "pw"}}

    def flood() -> None:
        with (
            run_server(**options) as server,  # type: ignore[arg-type]
            socket.create_connection((server.host, server.port), timeout=10) as conn,
            conn.makefile("rb") as reader,
        ):
            reader.readline()  # the greeting
            for line in prelude.splitlines(keepends=True):  # each waits for its reply
                conn.sendall(line)
                while reader.readline()[3:4] == b"-":
                    pass
            chunk = b"A" * 65536
            for _ in range(FLOOD // len(chunk)):
                conn.sendall(chunk)
            conn.sendall(b"\r\n")
            replies.append(reader.readline())

    assert _peak(flood) < PEAK_LIMIT
    assert replies[0].startswith(b"500 5.5.2 ") and limit.encode() in replies[0]
