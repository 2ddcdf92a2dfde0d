"""A custom adapter: run the sans-IO session drivers over your own transport.

    python examples/custom_adapter.py

Every high-level operation (``open``, ``login``, ``sendmail``, ``send_many``, ``quit``,
…) is a generator in ``smtpproto.Session``. It yields three kinds of requests —
``Write(data, timeout)``, ``Read(timeout)``, ``UpgradeTLS(server_hostname, timeout)`` —
and the adapter performs each and sends the result back; the generator's return value
is the operation's result. Errors go *into* the generator with ``throw``: a timeout as
``TimeoutError``, a transport failure as ``OSError``, and the driver turns them into the
right ``SMTPError`` (``SMTPDeliveryStatusUnknown`` after the final dot, for example).

This adapter is deliberately small: a blocking socket, one request at a time. The real
adapters also keep reading while a long write blocks (RFC 2920 §3.2) and apply an
overall deadline; see ``smtpproto/adapters/`` and ``docs/design.md`` §7.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from smtpproto import Read, Session, UpgradeTLS, Write
from smtpproto.testing import run_server


class TinyAdapter:
    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=30)
        self.context = context
        self.session = Session(server_hostname=host)

    def run(self, driver: Any) -> Any:
        """Perform the driver's requests until it returns; return its result."""
        answer: Any = None
        failure: BaseException | None = None
        while True:
            try:
                request = driver.throw(failure) if failure else driver.send(answer)
            except StopIteration as done:
                return done.value
            answer, failure = None, None
            try:
                self.sock.settimeout(request.timeout)
                if isinstance(request, Write):
                    self.sock.sendall(request.data)
                elif isinstance(request, Read):
                    answer = self.sock.recv(65536)
                elif isinstance(request, UpgradeTLS):
                    self.sock = self.context.wrap_socket(
                        self.sock, server_hostname=request.server_hostname
                    )  # answer None: no channel binding, so no SCRAM-*-PLUS
            except OSError as error:  # TimeoutError (a timeout) is an OSError too
                failure = error

    def close(self) -> None:
        self.sock.close()


def main() -> None:
    with run_server(users={"alice": "s3cret"}) as server:
        adapter = TinyAdapter(server.host, server.port, server.ssl_context())
        try:
            hello = adapter.run(adapter.session.open())  # greeting, EHLO, STARTTLS, EHLO
            print("open:", hello.code, "TLS:", adapter.session.conn.tls_active)
            print("login:", adapter.run(adapter.session.login("alice", "s3cret")).code)
            result = adapter.run(
                adapter.session.sendmail(
                    "alice@example.com", ["bob@example.org"], b"Subject: hi\r\n\r\nHi\r\n"
                )
            )
            print("sendmail delivered to:", result.delivered)
            print("quit:", adapter.run(adapter.session.quit()).code)
        finally:
            adapter.close()
        (stored,) = server.wait_for_messages(1, timeout=10)
        print("the server stored", len(stored.data), "octets")


if __name__ == "__main__":
    main()
