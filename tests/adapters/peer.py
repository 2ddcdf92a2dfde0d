"""A scripted SMTP server in a thread, for fault injection over a socket pair.

Each test writes the server's side of the dialogue as a function of a ``Peer``
(``send``, ``line``, ``expect``, ``read_data``, ``starttls``, ``close``). Every socket
operation has a timeout, and the thread is joined with a timeout, so no test can hang.
An assertion failing inside the script is re-raised in the test; an ``OSError`` (the
client closed first) ends the script quietly.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

PEER_TIMEOUT = 10.0
EHLO = b"250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"


class Peer:
    """The server end of the connection."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(PEER_TIMEOUT)
        self.sock: socket.socket = sock
        self.buffer = b""
        self.lines: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("client closed")
        self.buffer += data

    def line(self) -> bytes:
        """The next command line, without CRLF."""
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        self.lines.append(line)
        return line

    def expect(self, prefix: bytes) -> bytes:
        line = self.line()
        assert line.upper().startswith(prefix), (line, prefix)
        return line

    def read_data(self) -> bytes:
        """DATA content up to and without ``CRLF.CRLF``, still dot-stuffed."""
        while b"\r\n.\r\n" not in self.buffer:
            self._fill()
        content, self.buffer = self.buffer.split(b"\r\n.\r\n", 1)
        return content + b"\r\n"

    def greet(self, ehlo: bytes = EHLO) -> None:
        """Greeting, then answer EHLO."""
        self.send(b"220 mx.example.org ESMTP\r\n")
        self.expect(b"EHLO")
        self.send(ehlo)

    def starttls(self, context: ssl.SSLContext) -> None:
        """Server-side handshake on the connection."""
        assert not self.buffer, self.buffer
        self.sock = context.wrap_socket(self.sock, server_side=True)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@contextlib.contextmanager
def scripted(script: Callable[[Peer], None]) -> Iterator[socket.socket]:
    """Run ``script`` on one end of a socket pair; yield the client end."""
    client, server = socket.socketpair()
    errors: list[BaseException] = []

    def run() -> None:
        peer = Peer(server)
        try:
            script(peer)
        except (OSError, ssl.SSLError):
            pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            peer.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield client
    finally:
        client.close()
        thread.join(PEER_TIMEOUT * 2)
        assert not thread.is_alive(), "scripted peer did not finish"
        if errors:
            raise errors[0]


@contextlib.contextmanager
def listening(
    family: socket.AddressFamily, address: str | tuple[str, int], script: Callable[[Peer], None]
) -> Iterator[socket.socket]:
    """Accept one connection on ``address`` and run ``script`` on it; yield the listener."""
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.settimeout(PEER_TIMEOUT)
    listener.bind(address)
    listener.listen(1)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        peer = Peer(conn)
        try:
            script(peer)
        except (OSError, ssl.SSLError):
            pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            peer.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        thread.join(PEER_TIMEOUT * 2)
        listener.close()
        assert not thread.is_alive(), "listening peer did not finish"
        if errors:
            raise errors[0]
