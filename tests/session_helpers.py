"""Run session drivers against ``engine_helpers.ScriptedServer`` in memory.

``run_driver`` plays the adapter: ``Write`` goes to the server, whose replies wait for
the next ``Read``; a ``Read`` with nothing pending means the server is silent, which is
reported as a ``TimeoutError`` (or EOF with ``eof_when_silent``). Loops are bounded.
"""

from __future__ import annotations

from typing import Any

from engine_helpers import ScriptedServer
from smtpproto.client_engine.config import ClientConfig
from smtpproto.drivers.session import Read, Session, UpgradeTLS, Write
from smtpproto.sasl import ChannelBinding

MAX_REQUESTS = 100_000
GREETING = b"220 mx.example.org ESMTP\r\n"


class Transport:
    """The in-memory "wire": what was written, and the server's pending replies."""

    def __init__(self, server: ScriptedServer, greeting: bytes = GREETING) -> None:
        self.server = server
        self.pending = greeting
        self.written: list[bytes] = []
        self.requests: list[object] = []
        self.tls_upgrades = 0
        self.binding: ChannelBinding | None = None
        self.eof_when_silent = False
        self.after_write: bytes | None = None

    def run(self, driver: Any) -> Any:
        """Drive ``driver`` to completion; return its result (exceptions propagate)."""
        answer: Any = None
        for _ in range(MAX_REQUESTS):
            try:
                request = driver.send(answer)
            except StopIteration as stop:
                return stop.value
            self.requests.append(request)
            answer = None
            if isinstance(request, Write):
                self.written.append(request.data)
                self.pending += self.server.receive(request.data)
            elif isinstance(request, Read):
                if self.pending:
                    answer, self.pending = self.pending, b""
                elif self.eof_when_silent:
                    answer = b""
                else:
                    answer = None
                    try:
                        driver.throw(TimeoutError("silent server"))
                    except StopIteration as stop:
                        return stop.value
                    raise AssertionError("the driver swallowed a TimeoutError")
            elif isinstance(request, UpgradeTLS):
                self.tls_upgrades += 1
                answer = self.binding
            else:
                raise AssertionError(f"unknown request {request!r}")
        raise AssertionError("the driver never finished")

    @property
    def wire(self) -> bytes:
        return b"".join(self.written)


def opened(
    script: dict[bytes, list[bytes]] | None = None, **config: Any
) -> tuple[Session, Transport, ScriptedServer]:
    """A ``Session`` (``ClientConfig(**config)``) greeted and past EHLO/LHLO against a
    ``ScriptedServer`` answering ``script``, with the ``Transport`` between them."""
    server = ScriptedServer(script)
    session = Session(ClientConfig(**config), local_hostname="client.example")
    transport = Transport(server)
    transport.run(session.open())
    return session, transport, server
