"""Per-recipient results: some recipients accepted, some refused, and why.

    python examples/per_recipient.py

The built-in server's reply policy is replaced by a ``Session`` subclass that refuses
two addresses, one for good (550 5.1.1) and one for now (452 4.2.2). ``sendmail``
returns a ``TransactionResult``: ``delivered`` lists the recipients the server took,
``failed`` the others with the reply that refused each; every ``Reply`` explains itself.
When *no* recipient is accepted, nothing is sent and ``SMTPRecipientsRefused`` says why.
"""

from __future__ import annotations

from smtpproto import Reply
from smtpproto.blocking import SMTPClient
from smtpproto.exceptions import SMTPRecipientsRefused
from smtpproto.server import Session
from smtpproto.server_engine.events import RcptReceived
from smtpproto.testing import run_server

MESSAGE = b"Subject: many\r\n\r\nHello all\r\n"


class PickyPolicy(Session):
    def rcpt(self, event: RcptReceived) -> Reply:
        if event.recipient == "nobody@example.org":
            return Reply(550, (b"5.1.1 No such user here",))
        if event.recipient == "full@example.org":
            return Reply(452, (b"4.2.2 Mailbox full, try again later",))
        return super().rcpt(event)


def main() -> None:
    recipients = ["bob@example.org", "nobody@example.org", "full@example.org"]
    with run_server(session_class=PickyPolicy) as server:
        context = server.ssl_context()
        with SMTPClient(server.host, server.port, ssl_context=context) as client:
            result = client.sendmail("alice@example.com", recipients, MESSAGE)
            print("delivered:", ", ".join(result.delivered))
            for address, reply in result.failed:
                retry = "later" if reply.is_transient else "never"  # 4xx / 5xx
                print(f"refused {address} (retry {retry}): {reply.explain()}")

            try:
                client.sendmail("alice@example.com", ["nobody@example.org"], MESSAGE)
            except SMTPRecipientsRefused as error:
                print("nobody accepted, nothing sent:", dict(error.refused))
        (stored,) = server.wait_for_messages(1, timeout=10)
        print("the server stored one copy, for", ", ".join(stored.recipients))


if __name__ == "__main__":
    main()
