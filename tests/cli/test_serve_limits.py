"""``smtpproto serve --rcptmax N --mailmax N``: LIMITS (RFC 9422) advertised and
enforced, against smtplib (which ignores LIMITS, so the server's refusals show) and
smtpproto's own client (which reads RCPTMAX and splits the recipients)."""

from __future__ import annotations

import smtplib

import pytest

from smtpproto.blocking import SMTPClient

from .helpers import ServeProcess, assert_clean_failure, run_cli

MESSAGE = b"Subject: hi\r\nFrom: a@example.org\r\nTo: b@example.org\r\n\r\nHello there.\r\n"
FIVE = [f"r{i}@example.org" for i in range(5)]


def test_rcptmax_and_mailmax_are_advertised_and_enforced() -> None:
    args = ("--no-starttls", "--quiet", "--rcptmax", "2", "--mailmax", "2")
    with ServeProcess(*args) as serve:
        assert serve.wait_for("advertised:") == "advertised: LIMITS RCPTMAX=2 MAILMAX=2"
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as client:
            client.ehlo()
            assert client.esmtp_features["limits"] == "RCPTMAX=2 MAILMAX=2"
            refused = client.sendmail("a@example.org", FIVE, MESSAGE)
            assert sorted(refused) == FIVE[2:]
            assert all(reply == (452, b"4.5.3 Too many recipients") for reply in refused.values())
            client.sendmail("a@example.org", FIVE[:1], MESSAGE)
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                client.sendmail("a@example.org", FIVE[:1], MESSAGE)
            assert info.value.smtp_code == 451
            assert info.value.smtp_error.startswith(b"4.5.3 ")
            assert client.noop()[0] == 250
        with SMTPClient("127.0.0.1", serve.port, tls="none", timeout=20) as ours:
            result = ours.sendmail("a@example.org", FIVE[:4], MESSAGE)  # two transactions
            assert result.delivered == tuple(FIVE[:4])
        assert serve.stop() == 0


@pytest.mark.parametrize("flag", ["--rcptmax", "--mailmax"])
@pytest.mark.parametrize("value", ["0", "-1", "1000000", "x", "2.5", "\u0661"])
def test_a_bad_limit_is_a_usage_error(flag: str, value: str) -> None:
    result = run_cli("serve", flag, value)
    assert_clean_failure(result, 2, flag)
