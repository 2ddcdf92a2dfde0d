"""A ``sendmail`` split over the server's recipient limit (RFC 5321 §4.5.3.1.10: 452
4.5.3; RFC 9422 §4.2: LIMITS RCPTMAX) whose follow-up transaction fails (connection
lost, reply lost after the content, timeout): the exception carries the earlier
transactions' deliveries in ``partial_result``, so a retry need not deliver twice.

Against ``engine_helpers.ScriptedServer``; the adapters run the same drivers
(tests/adapters/test_split_partial_result_e2e.py checks them against a real server).
"""

from __future__ import annotations

import pickle

import pytest

from session_helpers import opened
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPError,
    SMTPTimeoutError,
)

RCPTS = [f"r{i}@example.org" for i in range(5)]
MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"
EHLO_RCPTMAX = b"250-mx.example.org\r\n250-PIPELINING\r\n250 LIMITS RCPTMAX=2\r\n"
TOO_MANY = b"452 4.5.3 too many recipients\r\n"


def failing(how: str) -> tuple[dict[bytes, list[bytes]], type[SMTPError], bool]:
    """The follow-up's failure: the script for it, the error, EOF when silent."""
    if how == "closed at MAIL":
        return {b"MAIL": [b"250 ok\r\n", b""]}, SMTPConnectError, True
    if how == "reply to the dot lost":
        return {b".": [b"250 queued\r\n", b""]}, SMTPDeliveryStatusUnknown, True
    return {b"MAIL": [b"250 ok\r\n", b""]}, SMTPTimeoutError, False  # silent at MAIL


@pytest.mark.parametrize("how", ["closed at MAIL", "reply to the dot lost", "timeout at MAIL"])
@pytest.mark.parametrize("limit", ["rcptmax", "452"])
@pytest.mark.parametrize("pipelining", [True, False])
def test_a_failed_follow_up_keeps_the_earlier_deliveries(
    how: str, limit: str, pipelining: bool
) -> None:
    script, error, eof = failing(how)
    if limit == "rcptmax":
        script[b"EHLO"] = [EHLO_RCPTMAX]
    else:  # the third RCPT of the first transaction and the rest: too many
        script[b"RCPT"] = [b"250 ok\r\n"] * 2 + [TOO_MANY] * 3
    session, transport, server = opened(script)
    transport.eof_when_silent = eof
    with pytest.raises(error) as caught:
        transport.run(session.sendmail("a@example.org", RCPTS, MESSAGE, pipelining=pipelining))
    partial = caught.value.partial_result
    assert partial is not None and len(server.messages) >= 1
    assert partial.delivered == tuple(RCPTS[:2]) and partial.failed == ()
    assert [address for address, _ in partial.recipients] == RCPTS[:2]
    if isinstance(caught.value, SMTPDeliveryStatusUnknown):  # the follow-up's own
        assert caught.value.recipients == tuple(RCPTS[2:4] if limit == "rcptmax" else RCPTS[2:])
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.partial_result == partial
    assert not session.usable


def test_a_failed_first_transaction_has_no_partial_result() -> None:
    session, transport, _ = opened({b"EHLO": [EHLO_RCPTMAX], b"MAIL": [b""]})
    transport.eof_when_silent = True
    with pytest.raises(SMTPConnectError) as caught:
        transport.run(session.sendmail("a@example.org", RCPTS, MESSAGE))
    assert caught.value.partial_result is None


def test_an_unsplit_failure_has_no_partial_result() -> None:
    session, transport, _ = opened({b".": [b""]})
    transport.eof_when_silent = True
    with pytest.raises(SMTPDeliveryStatusUnknown) as caught:
        transport.run(session.sendmail("a@example.org", RCPTS, MESSAGE))
    assert caught.value.partial_result is None
