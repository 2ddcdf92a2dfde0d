"""A ``sendmail``/``send_message`` split over the built-in server's LIMITS RCPTMAX
(RFC 9422 §4.2) whose follow-up loses its connection: every adapter raises with the
earlier transactions' deliveries in ``partial_result`` (tests/test_split_partial_result.py
has the drivers' cases)."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage

import pytest

from interop.peers import HOST
from smtpproto.exceptions import SMTPConnectError, SMTPDeliveryStatusUnknown
from smtpproto.testing import Drop, Rule, run_server

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10
SENDER = "sender@example.test"
FIVE = [f"r{i}@example.test" for i in range(1, 6)]


@pytest.mark.parametrize("stage", ["mail", "data_end"])
@pytest.mark.parametrize("how", ["sendmail", "send_message"])
def test_a_lost_follow_up_keeps_the_earlier_deliveries(
    make_client: MakeClient, stage: str, how: str
) -> None:
    # Message 2 (the first follow-up) is dropped at its MAIL, or after its content
    # was kept (the client cannot know: delivery status unknown, RFC 1047). At MAIL
    # with CHUNKING, BDAT LAST went out with the MAIL (RFC 3030 §4.2): unknown too.
    rules = [Rule(stage=stage, message=2, action=Drop())]  # type: ignore[arg-type]
    error = (SMTPConnectError, SMTPDeliveryStatusUnknown)
    with run_server(starttls=False, rcptmax=2, rules=rules, timeout=TIMEOUT) as server:
        client = make_client(host=HOST, port=server.port, tls="none", timeout=TIMEOUT)
        with client, pytest.raises(error) as caught:
            if how == "sendmail":
                client.sendmail(SENDER, FIVE, b"Subject: split\r\n\r\nhello\r\n")
            else:
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = SENDER, ", ".join(FIVE), "split"
                msg.set_content("hello")
                client.send_message(msg)
        first = server.wait_for_messages(1, timeout=TIMEOUT)[0]
    partial = caught.value.partial_result
    assert partial is not None
    assert partial.delivered == tuple(FIVE[:2]) == first.recipients
    assert [address for address, _ in partial.recipients] == FIVE[:2]
    if stage == "data_end":
        assert isinstance(caught.value, SMTPDeliveryStatusUnknown)
    if isinstance(caught.value, SMTPDeliveryStatusUnknown):  # the follow-up's: unknown
        assert caught.value.recipients == tuple(FIVE[2:4])  # (unanswered RCPTs included)
