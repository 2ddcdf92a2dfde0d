"""TLS policies: required, opportunistic, none, and what a failure looks like.

    python examples/tls.py

``tls=`` is ``"required"`` (STARTTLS or fail before anything is sent), ``"opportunistic"``
(STARTTLS when offered), ``"none"`` or ``"implicit"`` (TLS from the first byte, port
465). The default follows the port: implicit on 465, required on 587, opportunistic
otherwise. Certificates and host names are always verified unless you pass a context
that does not.
"""

from __future__ import annotations

from smtpproto.blocking import SMTPClient
from smtpproto.exceptions import SMTPTLSError
from smtpproto.testing import run_server

MESSAGE = b"Subject: tls\r\n\r\nHello\r\n"


def main() -> None:
    with run_server() as server:  # offers STARTTLS with its own certificate
        with SMTPClient(
            server.host, server.port, tls="required", ssl_context=server.ssl_context()
        ) as client:
            client.sendmail("alice@example.com", ["bob@example.org"], MESSAGE)
            assert client.tls_info is not None
            print("required: sent over", client.tls_info.version)

        # The system's CAs do not know the server's self-signed certificate.
        try:
            with SMTPClient(server.host, server.port, tls="required") as client:
                client.sendmail("alice@example.com", ["bob@example.org"], MESSAGE)
        except SMTPTLSError as error:
            print("required, unknown certificate: SMTPTLSError:", type(error.__cause__).__name__)

    with run_server(starttls=False) as server:  # no STARTTLS at all
        try:
            with SMTPClient(server.host, server.port, tls="required") as client:
                client.sendmail("alice@example.com", ["bob@example.org"], MESSAGE)
        except SMTPTLSError as error:
            print("required, no STARTTLS offered: SMTPTLSError:", str(error).splitlines()[0])
        with SMTPClient(server.host, server.port, tls="opportunistic") as client:
            client.sendmail("alice@example.com", ["bob@example.org"], MESSAGE)
            print("opportunistic, no STARTTLS offered: sent in cleartext:", client.tls_info)
        print("messages the cleartext server stored:", len(server.messages))


if __name__ == "__main__":
    main()
