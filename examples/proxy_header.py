"""The HAProxy PROXY header: tell a server behind a proxy who the real client is.

    python examples/proxy_header.py

A server configured for the PROXY protocol (Postfix ``smtpd_upstream_proxy_protocol =
haproxy``, HAProxy ``accept-proxy``) expects one header before SMTP and takes the
client's address from it. ``proxy_header=ProxyHeader(...)`` on any client writes it
first (docs/proxy-protocol.md). Here a small stand-in for such a server reads the
header, prints it, and relays the rest of the connection to the built-in server.
"""

from __future__ import annotations

import socket
import threading

from smtpproto import LocalProtocolError, ProxyHeader
from smtpproto.blocking import SMTPClient
from smtpproto.testing import run_server

MESSAGE = b"Subject: proxied\r\n\r\nHello\r\n"


def pump(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes one way until the end of the stream."""
    while data := source.recv(65536):
        target.sendall(data)
    target.shutdown(socket.SHUT_WR)


def proxy_aware_front(listener: socket.socket, backend: tuple[str, int]) -> None:
    """Accept one connection, read its v1 PROXY line, relay the rest to ``backend``."""
    listener.settimeout(10)
    conn, _ = listener.accept()
    conn.settimeout(10)
    header = b""
    while not header.endswith(b"\r\n") and len(header) < 107:  # §2.1: at most 107 octets
        header += conn.recv(1)
    print("the server was told:", header.decode("ascii").strip())
    with conn, socket.create_connection(backend) as upstream:
        back = threading.Thread(target=pump, args=(upstream, conn))
        back.start()
        pump(conn, upstream)
        back.join()


def main() -> None:
    header = ProxyHeader(
        source="192.0.2.7", source_port=50123, destination="198.51.100.25", destination_port=25
    )
    print("v1:", header.to_bytes())
    v2 = ProxyHeader(version=2, source="2001:db8::7", source_port=50123,
                     destination="2001:db8::25", destination_port=25)  # fmt: skip
    print("v2:", v2.describe())
    try:
        ProxyHeader(source="192.0.2.7", source_port=1, destination="2001:db8::25",
                    destination_port=25)  # fmt: skip
    except LocalProtocolError as error:
        print("refused before sending:", error)

    with run_server() as server, socket.create_server(("127.0.0.1", 0)) as listener:
        front = threading.Thread(
            target=proxy_aware_front, args=(listener, (server.host, server.port))
        )
        front.start()
        with SMTPClient(
            "127.0.0.1", listener.getsockname()[1], tls="none", proxy_header=header
        ) as client:
            result = client.sendmail("alice@example.com", ["bob@example.org"], MESSAGE)
            print("delivered to:", ", ".join(result.delivered))
        front.join(10)
        print("messages the server stored:", len(server.messages))


if __name__ == "__main__":
    main()
