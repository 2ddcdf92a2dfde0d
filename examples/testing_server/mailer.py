"""A small web app that sends mail, Django/Flask style: what ``test_mailer.py`` tests.

``settings`` stands for Django's ``django.conf.settings`` (or Flask's ``app.config``);
``signup_view`` for a view that sends a welcome mail with smtplib, as Django's SMTP
``EmailBackend`` does. The point is its error handling, which the tests drive by making
the smtpproto test server fail on purpose: a refused address is the user's mistake
(400), a temporary failure is queued for a retry (202), and a connection lost after the
message was sent is *not* resent (the server may have delivered it, RFC 1047).
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage


@dataclass
class Settings:
    EMAIL_HOST: str = "localhost"
    EMAIL_PORT: int = 25
    EMAIL_TIMEOUT: float = 10.0
    DEFAULT_FROM_EMAIL: str = "noreply@example.com"
    #: Addresses whose welcome mail is to be sent again later (a task queue, in real life).
    RETRY_QUEUE: list[str] = field(default_factory=list)


settings = Settings()


def send_welcome(address: str) -> str:
    """Send the welcome mail: "sent", "retry" (4yz), "rejected" (5yz) or "unknown"
    (the connection was lost: the message may or may not have been delivered)."""
    message = EmailMessage()
    message["From"] = settings.DEFAULT_FROM_EMAIL
    message["To"] = address
    message["Subject"] = "Welcome!"
    message.set_content("Welcome aboard.\n")
    try:
        with smtplib.SMTP(
            settings.EMAIL_HOST, settings.EMAIL_PORT, timeout=settings.EMAIL_TIMEOUT
        ) as smtp:
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        code = error.recipients[address][0]
        return "retry" if 400 <= code < 500 else "rejected"
    except smtplib.SMTPResponseException as error:  # MAIL or DATA refused
        return "retry" if 400 <= error.smtp_code < 500 else "rejected"
    except smtplib.SMTPServerDisconnected:
        return "unknown"
    return "sent"


def signup_view(form: dict[str, str]) -> tuple[int, str]:
    """POST /signup: 201 with the mail sent, 202 when it will be (or may have been)
    sent, 400 when the mail server refuses the address."""
    address = form["email"]
    status = send_welcome(address)
    if status == "sent":
        return 201, "Welcome! Check your mailbox."
    if status == "retry":
        settings.RETRY_QUEUE.append(address)
        return 202, "Welcome! Your mail is on its way."
    if status == "unknown":  # never resend blindly: that is how duplicates happen
        return 202, "Welcome! Your mail is probably on its way."
    return 400, "That address does not accept mail."
