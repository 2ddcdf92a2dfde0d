"""A timeout names the limit that fired (issue: a ``message_timeout`` deadline was
reported with the 30 s per-step timeout): when the per-message deadline ends a wait,
``SMTPTimeoutError.timeout`` is ``message_timeout`` and the message says
"message_timeout of N s passed"; when the step's own RFC 5321 §4.5.3.2 timeout fires
first, the error names that. Every adapter and every pool, against the built-in
server slowed down by a rule (the wait ends after a fraction of a second)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpproto.exceptions import SMTPDeliveryTimeoutError, SMTPTimeoutError
from smtpproto.testing import Rule, run_server

from .facade import SyncClient
from .pool_facade import PoolFacade, make_pool

MakeClient = Callable[..., SyncClient]
__all__ = ["make_pool"]  # the fixture, used by name
CONTENT = b"Subject: t\r\n\r\nhi\r\n"
SHORT = 0.3
#: How long the server holds its reply: far past SHORT, so the client always gives up.
SLOW = 3.0


@pytest.mark.parametrize("pipelining", [None, False], ids=["pipelined", "lockstep"])
def test_the_message_deadline_is_what_the_error_names(
    make_client: MakeClient, pipelining: bool | None
) -> None:
    with run_server(starttls=False, rules=[Rule(stage="rcpt", delay=SLOW)]) as server:
        client = make_client(
            host="127.0.0.1", port=server.port, tls="none", timeout=30, message_timeout=SHORT
        )
        client.connect()
        with pytest.raises(SMTPTimeoutError) as caught:
            client.sendmail("a@example.org", "b@example.org", CONTENT, pipelining=pipelining)
        client.close()
    error = caught.value
    assert error.timeout == SHORT
    assert f"message_timeout of {SHORT:g} s passed" in str(error)
    assert "30" not in str(error)
    if pipelining is False:  # waiting for the RCPT reply, not for the final one
        assert not isinstance(error, SMTPDeliveryTimeoutError)
        assert error.waiting_for == "RCPT reply"


@pytest.mark.parametrize("message_timeout", [None, 30.0])
def test_a_step_timeout_that_fires_first_is_what_the_error_names(
    make_client: MakeClient, message_timeout: float | None
) -> None:
    with run_server(starttls=False, rules=[Rule(stage="rcpt", delay=SLOW)]) as server:
        client = make_client(
            host="127.0.0.1",
            port=server.port,
            tls="none",
            timeout=SHORT,
            message_timeout=message_timeout,
        )
        client.connect()
        with pytest.raises(SMTPTimeoutError) as caught:
            client.sendmail("a@example.org", "b@example.org", CONTENT, pipelining=False)
        client.close()
    error = caught.value
    assert error.timeout == SHORT and error.waiting_for == "RCPT reply"
    assert str(error) == f"timed out waiting for RCPT reply ({SHORT:g} s)"


def test_a_pool_names_the_message_deadline(make_pool: Callable[..., PoolFacade]) -> None:
    with run_server(starttls=False, rules=[Rule(stage="rcpt", delay=SLOW)]) as server:
        pool = make_pool(host="127.0.0.1", port=server.port, timeout=30, message_timeout=SHORT)
        with pytest.raises(SMTPTimeoutError) as caught:
            pool.call("sendmail", "a@example.org", "b@example.org", CONTENT, pipelining=False)
    assert caught.value.timeout == SHORT
    assert f"message_timeout of {SHORT:g} s passed" in str(caught.value)
