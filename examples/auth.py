"""AUTH (RFC 4954): the strongest offered mechanism, a chosen one, and a refusal.

    python examples/auth.py

``login(user, password)`` picks the strongest mechanism the server offers and the
credentials allow (SCRAM-SHA-256 before CRAM-MD5 before PLAIN/LOGIN; the -PLUS variants
when TLS gives a channel binding). It refuses to send a password in cleartext unless
you pass ``allow_cleartext_auth=True``. Secrets never appear in transcripts, reprs or
error messages.
"""

from __future__ import annotations

from smtpproto.blocking import SMTPClient
from smtpproto.exceptions import SMTPReplyError
from smtpproto.sasl import Plain
from smtpproto.testing import run_server

MESSAGE = b"Subject: auth\r\n\r\nHello\r\n"


def main() -> None:
    with run_server(users={"alice": "s3cret"}, require_auth=True) as server:
        context = server.ssl_context()
        with SMTPClient(server.host, server.port, ssl_context=context) as client:
            reply = client.login("alice", "s3cret")
            print("strongest offered:", reply.code, reply.text)
            client.sendmail("alice@example.com", ["bob@example.org"], MESSAGE)

        with SMTPClient(server.host, server.port, ssl_context=context) as client:
            client.login("alice", mechanism=Plain("alice", "s3cret"))
            print("PLAIN, chosen by the caller: authenticated")

        with SMTPClient(server.host, server.port, ssl_context=context) as client:
            try:
                client.login("alice", "wrong")
            except SMTPReplyError as error:
                print("wrong password:", error.reply.code, error.reply.explain())
        print("messages stored:", len(server.messages))


if __name__ == "__main__":
    main()
