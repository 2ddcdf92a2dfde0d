"""The replayer follows FUZZ-TRANSCRIPT.md, checked against a scripted server on
127.0.0.1: one write per ``c2s``, reads by recorded byte count, the wait before a
close, skipping the rest of a failed connection, resuming at the next connect."""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from smtpproto.fuzz.replay import replay
from smtpproto.fuzz.runner import Runner, Target
from smtpproto.fuzz.transcript import (
    Transcript,
    close,
    close_notify,
    connect,
    recv,
    send,
    sleep,
    starttls,
)

Handler = Callable[[socket.socket, list[bytes]], None]


class ScriptedServer:
    """Accepts connections one after the other; ``handler`` plays each one and appends
    what it received to ``seen`` (one entry per connection)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.seen: list[list[bytes]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            received: list[bytes] = []
            self.seen.append(received)
            with conn:
                conn.settimeout(5)
                try:
                    self.handler(conn, received)
                except OSError:
                    continue

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def server_factory() -> Iterator[Callable[[Handler], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(handler: Handler) -> ScriptedServer:
        servers.append(ScriptedServer(handler))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _read_line(conn: socket.socket, received: list[bytes]) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    received.append(data)
    return data


def test_writes_are_kept_whole_and_replies_read_by_byte_count(
    server_factory: Callable[[Handler], ScriptedServer],
) -> None:
    def handler(conn: socket.socket, received: list[bytes]) -> None:
        conn.sendall(b"220 hi\r\n")
        received.append(conn.recv(100))  # the pipelined write, in one segment
        conn.sendall(b"250-first\r\n")
        time.sleep(0.3)  # the rest comes later: the replayer must wait for it
        conn.sendall(b"250 second\r\n")
        _read_line(conn, received)
        conn.sendall(b"221 bye\r\n")

    server = server_factory(handler)
    transcript = Transcript(
        [
            connect(),
            recv(b"220 hi\r\n"),
            send(b"NOOP\r\nNOOP\r\n"),
            recv(b"250-first\r\n250 second\r\n"),
            send(b"QUIT\r\n"),
            recv(b"221 bye\r\n"),
            close(),
        ]
    )
    result = replay(transcript, "127.0.0.1", server.port)
    assert server.seen[0] == [b"NOOP\r\nNOOP\r\n", b"QUIT\r\n"]
    steps = result.observation.conns[0].steps
    assert steps[1].received == b"250-first\r\n250 second\r\n"  # waited for the rest
    assert steps[2].received == b"221 bye\r\n"
    assert result.reproduced is None  # no oracle in the header


def test_a_failed_connection_skips_to_the_next_connect(
    server_factory: Callable[[Handler], ScriptedServer],
) -> None:
    def handler(conn: socket.socket, received: list[bytes]) -> None:
        conn.sendall(b"220 hi\r\n")
        line = _read_line(conn, received)
        if line.startswith(b"BYE"):
            return  # closes without a reply
        conn.sendall(b"250 ok\r\n")
        _read_line(conn, received)

    server = server_factory(handler)
    transcript = Transcript(
        [
            connect(),
            send(b"BYE\r\n"),
            recv(b"250 ok\r\n"),
            sleep(0.2),
            send(b"NEVER SENT\r\n"),
            connect(),
            send(b"NOOP\r\n"),
            recv(b"250 ok\r\n"),
            send(b"QUIT\r\n"),
        ]
    )
    result = replay(transcript, "127.0.0.1", server.port)
    assert server.seen[0] == [b"BYE\r\n"]
    assert server.seen[1][0] == b"NOOP\r\n"
    first, second = result.observation.conns
    assert first.end in ("eof", "reset")
    assert second.steps[1].received == b"250 ok\r\n"


def test_a_refused_connection_is_skipped() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    result = replay(Transcript([connect(), send(b"NOOP\r\n")]), "127.0.0.1", port)
    assert result.observation.conns[0].end == "refused"


def test_the_header_oracle_is_applied(server_factory: Callable[[Handler], ScriptedServer]) -> None:
    def handler(conn: socket.socket, received: list[bytes]) -> None:
        conn.sendall(b"220 hi\r\n")
        _read_line(conn, received)
        conn.sendall(b"250 accepted, wrongly\r\n")

    server = server_factory(handler)
    events = [connect(), recv(b"220 hi\r\n"), send(b"RCPT TO:<x@y>\r\n", 1, trigger=True)]
    transcript = Transcript(events, {"oracle": "accepted", "params": {"codes": [2, 3]}})
    assert replay(transcript, "127.0.0.1", server.port).reproduced is True


def test_an_unknown_oracle_is_refused() -> None:
    transcript = Transcript([connect()], {"oracle": "astrology"})
    with pytest.raises(ValueError, match="unknown oracle"):
        replay(transcript, "127.0.0.1", 9)


def test_the_fuzzer_starts_no_handshake_after_a_refused_starttls(
    server_factory: Callable[[Handler], ScriptedServer],
) -> None:
    """A ClientHello sent after a 503 to STARTTLS reaches a plaintext server as command
    bytes (NUL among them) and can kill it under the wrong probe's name: the fuzzer's
    runner handshakes only after a final 220 (RFC 3207 §4) and leaves the ``tls``
    event out of its transcript; the replayer still follows the file as written."""

    def refuse_starttls(conn: socket.socket, received: list[bytes]) -> None:
        conn.sendall(b"220 scripted\r\n")
        _read_line(conn, received)
        conn.sendall(b"250-scripted\r\n250 STARTTLS\r\n")
        _read_line(conn, received)
        conn.sendall(b"503 5.5.1 not now\r\n")
        received.append(conn.recv(4096))  # a ClientHello, or b"" when the client closes

    server = server_factory(refuse_starttls)
    events = [connect(), send(b"EHLO x\r\n"), send(b"STARTTLS\r\n"), starttls(), send(b"NOOP\r\n")]
    obs, transcript = Runner(Target("127.0.0.1", server.port)).run(events, read_timeout=2.0)
    server.close()  # waits for the handler: what it received is complete
    assert b"".join(server.seen[0]) == b"EHLO x\r\nSTARTTLS\r\n"  # no ClientHello
    assert [e.dir for e in transcript.events].count("tls") == 0
    assert not obs.conns[0].peer_closed


def _tls_server_context() -> ssl.SSLContext:
    import trustme

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.mark.parametrize("answer", ["none", "at-once", "late"])
def test_after_close_notify_the_replayer_goes_on_in_cleartext_without_waiting(
    server_factory: Callable[[Handler], ScriptedServer], answer: str
) -> None:
    """FUZZ-TRANSCRIPT.md: close_notify, then cleartext "without waiting for the
    server's alert". A server that never answers the alert and reads on in cleartext
    (the downgrade the cleartext-after-close-notify probe looks for) must get the next
    write; so must one that answers it at once or late, its alert record then read in
    cleartext before the reply and skipped by the oracle's parser."""
    context = _tls_server_context()

    def downgrade(conn: socket.socket, received: list[bytes]) -> None:
        conn.sendall(b"220 scripted\r\n")
        _read_line(conn, received)
        conn.sendall(b"250-scripted\r\n250 STARTTLS\r\n")
        _read_line(conn, received)
        conn.sendall(b"220 go ahead\r\n")
        tls = context.wrap_socket(conn, server_side=True)
        received.append(tls.recv(100))  # EHLO inside TLS
        tls.sendall(b"250 scripted\r\n")
        received.append(tls.recv(100))  # b"": the client's close_notify
        if answer == "none":  # drop TLS without a word: no alert back
            plain = socket.socket(fileno=tls.detach())
            plain.settimeout(5)
        else:
            time.sleep(0.3 if answer == "late" else 0.0)
            plain = tls.unwrap()
        with plain:
            line = _read_line(plain, received)
            if line:
                plain.sendall(b"250 cleartext " + line)
            _read_line(plain, received)

    server = server_factory(downgrade)
    events = [
        connect(),
        send(b"EHLO x\r\n", 1),
        recv(b"250-scripted\r\n250 STARTTLS\r\n"),
        send(b"STARTTLS\r\n", 1),
        recv(b"220 go ahead\r\n"),
        starttls(),
        send(b"EHLO x\r\n", 1),
        recv(b"250 scripted\r\n"),
        close_notify(),
        send(b"NOOP\r\n", 1, trigger=True),
        recv(b"250 cleartext NOOP\r\n"),
        send(b"QUIT\r\n"),
        close(),
    ]
    header = {"oracle": "accepted", "params": {"codes": [2, 3, 4, 5]}}
    result = replay(Transcript(events, header), "127.0.0.1", server.port)
    server.close()
    assert server.seen[0][2:] == [b"EHLO x\r\n", b"", b"NOOP\r\n", b"QUIT\r\n"]
    assert result.observation.conns[0].steps[-2].received.endswith(b"250 cleartext NOOP\r\n")
    received = result.observation.conns[0].steps[-2].received
    if answer == "late":  # the server's alert came after the client went on in cleartext
        assert received[0] in (21, 23) and received.count(b"\r\n") == 1, received
    assert result.reproduced is True, received


def test_a_connect_closes_the_open_connection_as_close_does(
    server_factory: Callable[[Handler], ScriptedServer],
) -> None:
    """FUZZ-TRANSCRIPT.md: at a connect, "any connection still open is closed first, as
    for close", i.e. after waiting up to 1 s for more data. Closing at once left the
    server's late reply unread (unrecorded, and answered by the kernel with a RST)."""

    def handler(conn: socket.socket, received: list[bytes]) -> None:
        conn.sendall(b"220 hi\r\n")
        _read_line(conn, received)
        conn.sendall(b"250 ok\r\n")
        try:
            received.append(b"FIN" if conn.recv(100) == b"" else b"more")
        except ConnectionResetError:
            received.append(b"RST")

    server = server_factory(handler)
    events = [connect(), recv(b"220 hi\r\n"), send(b"NOOP\r\n"), connect(), send(b"NOOP\r\n")]
    events.append(close())
    result = replay(Transcript(events), "127.0.0.1", server.port)
    server.close()
    assert server.seen[0] == [b"NOOP\r\n", b"FIN"]
    first, second = result.observation.conns
    assert first.steps[-1].received == b"250 ok\r\n"  # drained, kept with its connection
    assert second.steps[-1].received == b"250 ok\r\n"
    # The bytes drained before a connect or a close are recorded before that event.
    dirs = [e.dir for e in result.recorded.events]
    assert dirs == ["tcp", "s2c", "c2s", "s2c", "tcp", "s2c", "c2s", "s2c", "tcp"]


def test_server_bytes_recorded_after_a_sleep_are_read_before_the_next_write(
    server_factory: Callable[[Handler], ScriptedServer],
) -> None:
    """An s2c event after a sleep is read there ("at least as many bytes as recorded"),
    not counted against the next write's read: else the next command goes out before
    the reply it follows, which a server refusing early pipelining (Postfix's
    reject_unauth_pipelining) answers differently."""

    def strict(conn: socket.socket, received: list[bytes]) -> None:
        conn.sendall(b"220 hi\r\n")
        _read_line(conn, received)
        time.sleep(0.4)
        early = select.select([conn], [], [], 0)[0]
        conn.sendall(b"554 pipelined too early\r\n" if early else b"250 one\r\n")
        _read_line(conn, received)
        conn.sendall(b"250 two\r\n")

    server = server_factory(strict)
    events = [
        connect(),
        recv(b"220 hi\r\n"),
        send(b"NOOP\r\n"),
        sleep(0.1),
        recv(b"250 one\r\n"),
        send(b"NOOP\r\n"),
        recv(b"250 two\r\n"),
        close(),
    ]
    result = replay(Transcript(events), "127.0.0.1", server.port)
    steps = result.observation.conns[0].steps
    assert [step.received for step in steps[1:]] == [b"", b"250 one\r\n", b"250 two\r\n"]
