"""``Transaction.result``: the ``TransactionResult`` lists every recipient with its
reply in the order the RCPTs were sent, whatever their number (one recipient takes a
shorter path than several: the same value), and a 421 fills the unanswered ones."""

from __future__ import annotations

import pytest

from smtpproto.client_engine.commands import Mail
from smtpproto.client_engine.session import Transaction
from smtpproto.wire.reply import Reply

OK = Reply(250, (b"2.1.5 Ok",))
REFUSED = Reply(550, (b"5.1.1 no such user",))
CLOSING = Reply(421, (b"4.3.0 closing",))
QUEUED = Reply(250, (b"2.0.0 queued",))


@pytest.mark.parametrize("count", [1, 2, 5])
@pytest.mark.parametrize("answered", [0, 1, 2, 5])
@pytest.mark.parametrize("from_template", [False, True])
def test_every_recipient_is_listed_with_its_reply(
    count: int, answered: int, from_template: bool
) -> None:
    addresses = tuple(f"r{index}@example.org" for index in range(count))
    mail = Mail(sender="s@example.org")
    if from_template:  # the fast lane's form: the RCPTs recorded with the MAIL
        txn = Transaction(mail, addresses)
    else:
        txn = Transaction(mail)
        for address in addresses:
            txn.add_recipient(address)
    txn.mail_reply = OK
    answered = min(answered, count)
    replies = [OK if index % 2 == 0 else REFUSED for index in range(answered)]
    for index, reply in enumerate(replies):
        txn.record_rcpt(index, reply)
    if answered == count:
        txn.data_reply = QUEUED
        result = txn.result()
    else:
        result = txn.result(fill=CLOSING)
    expected = tuple(zip(addresses, replies + [CLOSING] * (count - answered), strict=True))
    assert result.recipients == expected
    assert type(result.recipients) is tuple
    assert all(type(pair) is tuple for pair in result.recipients)
    assert result.sender == "s@example.org" and result.sender_reply is OK
    assert result.lmtp_replies == () and type(result.lmtp_replies) is tuple
    assert result.data_reply is (QUEUED if answered == count else None)
    assert txn.finished


def test_lmtp_replies_are_kept_in_order() -> None:
    txn = Transaction(Mail(sender="s@example.org"), ("a@example.org", "b@example.org"))
    txn.mail_reply = OK
    txn.record_rcpt(0, OK)
    txn.record_rcpt(1, OK)
    txn.lmtp_replies.extend([("a@example.org", QUEUED), ("b@example.org", REFUSED)])
    result = txn.result()
    assert result.lmtp_replies == (("a@example.org", QUEUED), ("b@example.org", REFUSED))
    assert result.delivered == ("a@example.org",)
