"""The app's mail error handling, tested against a server that fails on purpose.

Run with ``python -m pytest examples/testing_server``; ``tests/test_testing_server_examples.py``
does, so these examples stay true.
"""

from __future__ import annotations

import mailer
import pytest

from smtpproto.testing import (
    Context,
    Disconnect,
    Drop,
    Greylist,
    ReceivedMessages,
    Respond,
    Rule,
    RuleSet,
)


class Clock:
    """A clock the test moves by hand (greylisting reads it instead of the real one)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()


def test_the_welcome_mail_is_sent(smtp_messages: ReceivedMessages) -> None:
    assert mailer.signup_view({"email": "ann@example.org"})[0] == 201
    (message,) = smtp_messages.wait(1)
    assert message.recipients == ("ann@example.org",)
    assert b"Subject: Welcome!" in message.data


def test_an_unknown_address_is_the_users_mistake(
    smtp_rules: RuleSet, smtp_messages: ReceivedMessages
) -> None:
    smtp_rules.append(
        Rule(
            stage="rcpt",
            recipient="nobody@example.org",
            action=Respond(550, "No such user", "5.1.1"),
        )
    )
    assert mailer.signup_view({"email": "nobody@example.org"}) == (
        400,
        "That address does not accept mail.",
    )
    assert len(smtp_messages) == 0


@pytest.mark.parametrize(
    "rule",
    [
        Rule(stage="rcpt", action=Respond(452, "Mailbox full", "4.2.2")),
        Rule(stage="mail", action=Respond(451, "Local error", "4.3.0")),
        Rule(stage="data", action=Disconnect("Shutting down")),  # 421 and close
    ],
)
def test_a_temporary_failure_is_retried_later(rule: Rule, smtp_rules: RuleSet) -> None:
    smtp_rules.append(rule)
    assert mailer.signup_view({"email": "ann@example.org"})[0] == 202
    assert mailer.settings.RETRY_QUEUE == ["ann@example.org"]


@pytest.mark.smtp_server(clock=CLOCK)
def test_greylisting_then_the_retry_goes_through(
    smtp_rules: RuleSet, smtp_messages: ReceivedMessages
) -> None:
    smtp_rules.append(Rule(stage="rcpt", action=Greylist(retry_after=300)))
    assert mailer.send_welcome("ann@example.org") == "retry"
    CLOCK.now += 300  # five minutes later, without waiting five minutes
    assert mailer.send_welcome("ann@example.org") == "sent"
    assert len(smtp_messages.wait(1)) == 1


def test_a_connection_lost_after_the_message_is_not_resent(
    smtp_rules: RuleSet, smtp_messages: ReceivedMessages
) -> None:
    smtp_rules.append(Rule(stage="data_end", action=Drop()))  # kept, but no reply
    assert mailer.signup_view({"email": "ann@example.org"})[0] == 202
    assert mailer.settings.RETRY_QUEUE == []  # a retry would deliver it twice
    assert len(smtp_messages.wait(1)) == 1


def test_a_hook_decides_in_python(smtp_rules: RuleSet) -> None:
    def quota(context: Context) -> Respond | None:
        if context.stage == "rcpt" and context.recipient and context.recipient.endswith(".test"):
            return Respond(550, "No mail for .test domains", "5.1.2")
        return None

    smtp_rules.hook = quota
    assert mailer.signup_view({"email": "ann@example.test"})[0] == 400
    assert mailer.signup_view({"email": "ann@example.org"})[0] == 201
