"""Fault injection for the trio adapter over in-memory streams, with a virtual clock.

A scripted server task talks to ``TrioSMTPClient`` over ``trio.testing`` stream pairs
(``memory_stream_pair``: buffered; ``lockstep_stream_pair``: a send waits for the peer to
receive, so a client that stops reading while it writes deadlocks). Every test runs
under ``MockClock(autojump_threshold=0)``: when every task is blocked the clock jumps to
the next deadline, so the RFC 5321 default timeouts (minutes) fire at once and a
deadlock ends at the ``fail_after`` bound instead of hanging.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme

from interop.peers import TLSMaterial
from smtpproto.client_engine.config import Timeouts
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPError,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from smtpproto.trio_client import TrioSMTPClient

from .peer import EHLO
from .scripted import MESSAGE, STUFFED, ScriptedPeer

#: Virtual seconds any test may take before it counts as hung.
BOUND = 10_000


class TrioPeer(ScriptedPeer):
    """The server end: line-oriented reads and raw writes on a trio stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise trio.BrokenResourceError("client closed")
        self.buffer += data

    async def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            await self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    async def expect(self, prefix: bytes) -> bytes:
        line = await self.line()
        assert line.upper().startswith(prefix), (line, prefix)
        return line

    async def read_data(self) -> bytes:
        while b"\r\n.\r\n" not in self.buffer[-1024 * 1024 :]:  # the end is near the tail
            await self._fill()
        content, self.buffer = self.buffer.split(b"\r\n.\r\n", 1)
        return content + b"\r\n"

    async def starttls(self, context: ssl.SSLContext) -> None:
        assert not self.buffer, self.buffer
        tls = trio.SSLStream(self.stream, context, server_side=True)
        await tls.do_handshake()
        self.stream = tls


Script = Callable[[TrioPeer], Awaitable[None]]
ClientPart = Callable[[trio.abc.Stream], Awaitable[None]]


def run(script: Script, client_part: ClientPart, *, lockstep: bool = False) -> float:
    """Run ``script`` as the server and ``client_part`` as the client; return the virtual
    seconds the client part took. The server ending (or failing on a closed stream)
    closes its end; an assertion in the script fails the test."""

    async def serve(stream: trio.abc.Stream) -> None:
        peer = TrioPeer(stream)
        try:
            await script(peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(peer.stream)

    async def main() -> float:
        pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
        client_stream, server_stream = pair()
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve, server_stream)
                start = trio.current_time()
                await client_part(client_stream)
                elapsed = trio.current_time() - start
                nursery.cancel_scope.cancel()  # a server still stalling is done too
                return elapsed

    result: float = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return result


def test_delivery_over_a_memory_stream() -> None:
    received: list[bytes] = []

    async def script(peer: TrioPeer) -> None:
        await peer.greet()
        received.append(await peer.deliver_one())
        await peer.expect(b"QUIT")
        await peer.send(b"221 bye\r\n")

    async def client_part(stream: trio.abc.Stream) -> None:
        async with TrioSMTPClient(stream=stream) as client:
            assert client.capabilities is not None and client.capabilities.pipelining
            result = await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
            assert result.delivered == ("b@example.org",)

    run(script, client_part)
    assert received == [STUFFED]


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("greeting", SMTPConnectError),  # a lost connection, not a bad reply
        ("ehlo", SMTPConnectError),  # a lost connection, not a bad reply
        ("final", SMTPDeliveryStatusUnknown),
    ],
)
def test_server_closes_mid_reply(stage: str, expected: type[SMTPError]) -> None:
    async def script(peer: TrioPeer) -> None:
        if stage == "greeting":
            await peer.send(b"220 mx.exa")
            return
        await peer.send(b"220 mx\r\n")
        await peer.expect(b"EHLO")
        if stage == "ehlo":
            await peer.send(b"250-mx.example.org\r\n250-PIPEL")
            return
        await peer.send(EHLO)
        await peer.expect_transaction()
        await peer.go_ahead()
        await peer.send(b"25")

    async def client_part(stream: trio.abc.Stream) -> None:
        client = TrioSMTPClient(stream=stream)
        with pytest.raises(expected) as info:
            await client.connect()
            await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        if isinstance(info.value, SMTPDeliveryStatusUnknown):
            assert info.value.recipients == ("b@example.org",)
        assert not client.session.usable
        assert client._stream is None  # closed, never reused

    run(script, client_part)


@pytest.mark.parametrize(
    ("timeouts", "stall", "expected_wait"),
    [
        (None, "greeting", 300.0),  # RFC 5321 §4.5.3.2.1
        (None, "mail", 300.0),  # §4.5.3.2.2
        (None, "final", 600.0),  # §4.5.3.2.6: delivery status unknown
        (Timeouts(greeting=7.0), "greeting", 7.0),
        (Timeouts(data_termination=42.0), "final", 42.0),
    ],
)
def test_stalls_use_the_engine_timeouts(
    timeouts: Timeouts | None, stall: str, expected_wait: float
) -> None:
    async def script(peer: TrioPeer) -> None:
        if stall != "greeting":
            await peer.greet()
            await peer.expect_transaction()
            if stall == "final":
                await peer.go_ahead()
        await trio.sleep_forever()

    async def client_part(stream: trio.abc.Stream) -> None:
        client = TrioSMTPClient(stream=stream, timeout=timeouts)
        with pytest.raises(SMTPTimeoutError) as info:
            await client.connect()
            await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert info.value.timeout == expected_wait
        assert info.value.delivery_status_unknown == (stall == "final")
        if stall == "final":
            assert isinstance(info.value, SMTPDeliveryTimeoutError)
        assert not client.session.usable and client._stream is None

    run(script, client_part)


def test_message_deadline_caps_the_per_state_timeouts() -> None:
    waited: list[float] = []

    async def script(peer: TrioPeer) -> None:
        await peer.greet()
        while True:  # read, never answer
            await peer.line()

    async def client_part(stream: trio.abc.Stream) -> None:
        async with TrioSMTPClient(stream=stream, message_timeout=30.0) as client:
            start = trio.current_time()
            with pytest.raises(SMTPTimeoutError):
                await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
            waited.append(trio.current_time() - start)

    run(script, client_part)
    assert waited == [30.0]


@pytest.mark.parametrize("stage", ["greeting", "ehlo", "mail", "rcpt", "data", "final"])
def test_421_at_every_stage(stage: str) -> None:
    closing = b"421 4.3.2 shutting down\r\n"

    async def script(peer: TrioPeer) -> None:
        if stage == "greeting":
            await peer.send(closing)
            return
        await peer.send(b"220 mx\r\n")
        await peer.expect(b"EHLO")
        if stage == "ehlo":
            await peer.send(closing)
            return
        await peer.send(EHLO)
        await peer.expect_transaction()
        early = {"mail": closing, "rcpt": b"250 ok\r\n" + closing, "data": b"250 ok\r\n" * 2}
        if stage in early:
            await peer.send(early[stage] + (closing if stage == "data" else b""))
            return
        await peer.go_ahead()
        await peer.send(closing)

    async def client_part(stream: trio.abc.Stream) -> None:
        client = TrioSMTPClient(stream=stream)
        with pytest.raises(SMTPReplyError) as info:
            await client.connect()
            await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert info.value.code == 421
        assert not client.session.usable and client._stream is None

    run(script, client_part)


def _tls_script(material: TLSMaterial, injected: bytes = b"", later: bool = False) -> Script:
    async def script(peer: TrioPeer) -> None:
        await peer.greet(b"250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        await peer.expect(b"STARTTLS")
        if later:
            await peer.send(b"220 2.0.0 ready\r\n")
            await trio.sleep(1)  # the client is in its handshake by now
            await peer.send(injected)
        else:
            await peer.send(b"220 2.0.0 ready\r\n" + injected)
        await peer.starttls(material.server_context())
        await peer.expect(b"EHLO")
        await peer.send(b"250-mx.example.org\r\n250 AUTH PLAIN\r\n")
        await peer.expect(b"QUIT")
        await peer.send(b"221 bye\r\n")

    return script


def test_starttls_over_a_memory_stream(tls_material: TLSMaterial) -> None:
    async def client_part(stream: trio.abc.Stream) -> None:
        context = tls_material.client_context()
        async with TrioSMTPClient(
            stream=stream, ssl_context=context, server_hostname="localhost", tls="required"
        ) as client:
            assert client.session.conn.tls_active
            binding = client.session.channel_binding
            assert binding is not None and binding.type == "tls-server-end-point"
            assert client.capabilities is not None and client.capabilities.auth_mechanisms

    run(_tls_script(tls_material), client_part)


@pytest.mark.parametrize(("later", "expected"), [(False, SMTPProtocolError), (True, SMTPTLSError)])
def test_bytes_injected_after_the_starttls_220_are_refused(
    tls_material: TLSMaterial, later: bool, expected: type[SMTPError]
) -> None:
    """RFC 3207 §4: with the 220 they reach the engine, which refuses them; later they
    reach the TLS layer as garbage. Either way nothing is parsed as a reply."""
    injected = b"250-mx.example.org\r\n250 AUTH PLAIN\r\n"

    async def client_part(stream: trio.abc.Stream) -> None:
        client = TrioSMTPClient(
            stream=stream, ssl_context=tls_material.client_context(), server_hostname="localhost"
        )
        with pytest.raises(expected):
            await client.connect()
        assert not client.session.usable and not client.session.conn.tls_active

    run(_tls_script(tls_material, injected, later), client_part)


@pytest.mark.parametrize("problem", ["untrusted", "wrong-name"])
def test_bad_certificate_is_a_tls_error(
    tls_material: TLSMaterial, tmp_path: Path, problem: str
) -> None:
    if problem == "untrusted":
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        context = ssl.create_default_context(cafile=str(other))
        name = "localhost"
    else:
        context = tls_material.client_context()
        name = "mx.elsewhere.example"

    async def client_part(stream: trio.abc.Stream) -> None:
        client = TrioSMTPClient(stream=stream, ssl_context=context, server_hostname=name)
        with pytest.raises(SMTPTLSError) as info:
            await client.connect()
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        assert not client.session.usable and client._stream is None

    run(_tls_script(tls_material), client_part)


def test_implicit_tls_handshakes_before_the_greeting(tls_material: TLSMaterial) -> None:
    async def script(peer: TrioPeer) -> None:
        await peer.starttls(tls_material.server_context())
        await peer.greet()
        await peer.expect(b"NOOP")
        await peer.send(b"250 ok\r\n")
        await peer.expect(b"QUIT")
        await peer.send(b"221 bye\r\n")

    async def client_part(stream: trio.abc.Stream) -> None:
        async with TrioSMTPClient(
            stream=stream,
            tls="implicit",
            ssl_context=tls_material.client_context(),
            server_hostname="localhost",
        ) as client:
            assert client.session.conn.tls_active
            assert (await client.noop()).code == 250

    run(script, client_part)


def test_cancellation_marks_the_client_broken() -> None:
    async def script(peer: TrioPeer) -> None:
        await peer.greet()
        await peer.expect(b"MAIL")
        await trio.sleep_forever()

    async def client_part(stream: trio.abc.Stream) -> None:
        client = TrioSMTPClient(stream=stream)
        await client.connect()
        with trio.move_on_after(5) as scope:  # well before the 300 s MAIL timeout
            await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert scope.cancelled_caught
        assert not client.session.usable and client._stream is None
        with pytest.raises(SMTPProtocolError, match="broken"):
            await client.noop()

    run(script, client_part)


def test_early_replies_to_a_large_pipelined_group_do_not_deadlock() -> None:
    """RFC 2920 §3.2 over a lockstep pair: the server answers each RCPT before reading
    the next, and its send waits until the client reads; a client that only wrote
    would deadlock (and time out on the virtual clock)."""
    count = 2000
    recipients = [f"{'r' * 40}{i}@example.org" for i in range(count)]

    async def script(peer: TrioPeer) -> None:
        await peer.greet()
        await peer.expect(b"MAIL")
        await peer.send(b"250 ok\r\n")
        for _ in range(count):
            await peer.expect(b"RCPT")
            await peer.send(b"250 2.1.5 ok\r\n")
        await peer.expect(b"DATA")
        await peer.send(b"354 go\r\n")
        await peer.read_data()
        await peer.send(b"250 queued\r\n")
        await peer.expect(b"QUIT")
        await peer.send(b"221 bye\r\n")

    async def client_part(stream: trio.abc.Stream) -> None:
        async with TrioSMTPClient(stream=stream) as client:
            result = await client.sendmail("a@example.org", recipients, MESSAGE)
            assert len(result.delivered) == count

    elapsed = run(script, client_part, lockstep=True)
    assert elapsed == 0  # no timeout had to fire


def test_large_body_streams_over_a_lockstep_stream() -> None:
    size = 512 * 1024  # many 64 KiB writes: the read-ahead burst path
    line = b"y" * 98 + b"\r\n"
    seen: list[int] = []

    async def script(peer: TrioPeer) -> None:
        await peer.greet()
        seen.append(len(await peer.deliver_one()))
        await peer.expect(b"QUIT")
        await peer.send(b"221 bye\r\n")

    async def client_part(stream: trio.abc.Stream) -> None:
        async with TrioSMTPClient(stream=stream) as client:
            body = (line for _ in range(size // len(line)))
            await client.sendmail("a@example.org", ["b@example.org"], body)

    run(script, client_part, lockstep=True)
    assert seen == [size // len(line) * len(line)]


def test_server_that_stops_reading_mid_body_times_out() -> None:
    """The write of a body blocks for good (lockstep: nobody receives); the RFC 5321
    §4.5.3.2.5 data-block timeout (3 minutes) ends it, with the read-ahead task running."""
    waited: list[float] = []

    async def script(peer: TrioPeer) -> None:
        await peer.greet()
        await peer.expect_transaction()
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await trio.sleep_forever()

    async def client_part(stream: trio.abc.Stream) -> None:
        client = TrioSMTPClient(stream=stream)
        await client.connect()
        body = (b"x" * 78 + b"\r\n") * 4096  # several 64 KiB writes before the final dot
        start = trio.current_time()
        with pytest.raises(SMTPTimeoutError) as info:
            await client.sendmail("a@example.org", ["b@example.org"], body)
        waited.append(trio.current_time() - start)
        assert info.value.timeout == 180.0 and not info.value.delivery_status_unknown
        assert not client.session.usable and client._stream is None

    run(script, client_part, lockstep=True)
    assert waited == [180.0]
