"""A message to more recipients than the server takes per transaction (issue 11 item
11): LIMITS RCPTMAX (RFC 9422 §4.2) and ``452 4.5.3`` (RFC 5321 §4.5.3.1.10) make
``sendmail``/``send_message`` send the rest in follow-up transactions; every adapter,
against aiosmtpd (a handler with a recipient limit) and the built-in server (rules)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from interop.peers import HOST, free_port, stop_controller, track_connections, wait_for_port
from smtpproto.drivers.support import MailOptions
from smtpproto.exceptions import SMTPProtocolError, SMTPRecipientsRefused
from smtpproto.testing import Respond, Rule, run_server

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10
SENDER = "sender@example.test"
CONTENT = b"Subject: limits\r\n\r\nhello\r\n"
FIVE = [f"r{i}@example.test" for i in range(1, 6)]


class LimitedHandler:
    """aiosmtpd handler taking at most ``limit`` recipients per transaction: past it
    RCPT gets ``refusal`` (452 4.5.3); ``advertise`` adds ``LIMITS RCPTMAX=limit`` to
    EHLO; ``first_followup_refused``: the first RCPT of the second transaction gets
    452 4.5.3 too; ``full``: recipients refused with 452 4.2.2 (mailbox full)."""

    def __init__(
        self,
        limit: int,
        *,
        advertise: bool = False,
        first_followup_refused: bool = False,
        full: tuple[str, ...] = (),
        refusal: str = "452 4.5.3 Too many recipients",
    ) -> None:
        self.limit, self.advertise, self.full, self.refusal = limit, advertise, full, refusal
        self.first_followup_refused = first_followup_refused
        self.refuse_data_of = 0  # the transaction (1, 2...) whose content is refused
        self.transactions: list[tuple[str, ...]] = []  # the RCPTs accepted, per MAIL
        self.delivered: list[tuple[str, ...]] = []  # the recipients of each message
        self.contents: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.advertise:
            responses.insert(-1, f"250-LIMITS RCPTMAX={self.limit}")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        with self.lock:
            self.transactions.append(())
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            if address in self.full:
                return "452 4.2.2 Mailbox full"
            refuse_first = self.first_followup_refused and len(self.transactions) == 2
            if len(envelope.rcpt_tos) >= self.limit or (refuse_first and not envelope.rcpt_tos):
                return self.refusal
            envelope.rcpt_tos.append(address)
            self.transactions[-1] += (address,)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.refuse_data_of == len(self.transactions):
                return "554 5.7.1 Refused"
            self.delivered.append(tuple(envelope.rcpt_tos))
            self.contents.append(bytes(envelope.original_content or b""))
        return "250 OK queued"


@contextmanager
def limited_server(handler: LimitedHandler) -> Iterator[int]:
    port = free_port()
    controller = track_connections(
        Controller(handler, hostname=HOST, port=port, ready_timeout=TIMEOUT)
    )
    controller.start()
    try:
        wait_for_port(port)
        yield port
    finally:
        stop_controller(controller)


def _client(make_client: MakeClient, port: int) -> SyncClient:
    return make_client(host=HOST, port=port, tls="none", timeout=TIMEOUT)


def _each_once(delivered: list[tuple[str, ...]], recipients: list[str]) -> None:
    """Every recipient got exactly one copy."""
    flat = [address for group in delivered for address in group]
    assert sorted(flat) == sorted(recipients)


@pytest.mark.parametrize(
    ("limit", "count", "transactions"), [(2, 5, 3), (1, 5, 5), (2, 2, 1), (5, 5, 1), (3, 4, 2)]
)
@pytest.mark.parametrize("advertise", [True, False], ids=["rcptmax", "452-only"])
@pytest.mark.parametrize("pipelining", [None, False], ids=["pipelined", "lockstep"])
def test_recipients_past_the_limit_go_in_follow_ups(
    make_client: MakeClient,
    limit: int,
    count: int,
    transactions: int,
    advertise: bool,
    pipelining: bool | None,
) -> None:
    recipients = FIVE[:count]
    handler = LimitedHandler(limit, advertise=advertise)
    with limited_server(handler) as port, _client(make_client, port) as client:
        result = client.sendmail(SENDER, recipients, CONTENT, pipelining=pipelining)
        assert client.session.usable
    assert result.delivered == tuple(recipients) and result.failed == ()
    assert [address for address, _ in result.recipients] == recipients
    assert all(reply.code == 250 for _, reply in result.recipients)
    assert result.data_reply is not None and result.data_reply.code == 250
    assert len(handler.delivered) == transactions
    _each_once(handler.delivered, recipients)
    assert all(len(group) <= limit for group in handler.delivered)
    assert handler.contents == [CONTENT] * transactions
    if advertise:  # RCPTMAX known in advance: no RCPT is ever refused
        assert handler.transactions == handler.delivered


def test_send_message_is_split(make_client: MakeClient) -> None:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = ", ".join(FIVE)
    message["Subject"] = "split"
    message.set_content("hello\n")
    handler = LimitedHandler(2)
    with limited_server(handler) as port, _client(make_client, port) as client:
        result = client.send_message(message)
    assert result.delivered == tuple(FIVE)
    assert len(handler.delivered) == 3
    _each_once(handler.delivered, FIVE)
    assert len(set(handler.contents)) == 1


def test_every_rcpt_refused_raises(make_client: MakeClient) -> None:
    handler = LimitedHandler(0)
    with limited_server(handler) as port, _client(make_client, port) as client:
        with pytest.raises(SMTPRecipientsRefused) as info:
            client.sendmail(SENDER, FIVE, CONTENT)
        assert client.session.usable
    assert [address for address, _ in info.value.results] == FIVE
    assert {str(reply.enhanced) for _, reply in info.value.results} == {"4.5.3"}
    assert handler.delivered == [] and len(handler.transactions) == 1


def test_follow_up_refused_at_its_first_rcpt_ends_the_split(make_client: MakeClient) -> None:
    handler = LimitedHandler(2, first_followup_refused=True)
    with limited_server(handler) as port, _client(make_client, port) as client:
        result = client.sendmail(SENDER, FIVE, CONTENT)
        assert client.session.usable
        assert client.noop().code == 250
    assert result.delivered == tuple(FIVE[:2])
    assert [address for address, _ in result.failed] == FIVE[2:]
    assert all((r.code, str(r.enhanced)) == (452, "4.5.3") for _, r in result.failed)
    assert [address for address, _ in result.recipients] == FIVE
    assert handler.delivered == [tuple(FIVE[:2])] and len(handler.transactions) == 2


def test_mailbox_full_is_a_per_recipient_failure(make_client: MakeClient) -> None:
    handler = LimitedHandler(10, full=(FIVE[1],))
    with limited_server(handler) as port, _client(make_client, port) as client:
        result = client.sendmail(SENDER, FIVE, CONTENT)
    assert result.delivered == (FIVE[0], *FIVE[2:])
    ((address, reply),) = result.failed
    assert address == FIVE[1] and (reply.code, str(reply.enhanced)) == (452, "4.2.2")
    assert len(handler.transactions) == 1  # not retried


def test_bare_452_after_an_accepted_rcpt_splits(make_client: MakeClient) -> None:
    handler = LimitedHandler(2, refusal="452 Too many recipients")
    with limited_server(handler) as port, _client(make_client, port) as client:
        result = client.sendmail(SENDER, FIVE, CONTENT)
    assert result.delivered == tuple(FIVE)
    assert len(handler.delivered) == 3
    _each_once(handler.delivered, FIVE)


def test_bare_452_to_the_first_rcpt_is_not_a_split(make_client: MakeClient) -> None:
    handler = LimitedHandler(0, refusal="452 Insufficient system storage")
    with (
        limited_server(handler) as port,
        _client(make_client, port) as client,
        pytest.raises(SMTPRecipientsRefused),
    ):
        client.sendmail(SENDER, FIVE, CONTENT)
    assert len(handler.transactions) == 1


def test_opt_out_sends_one_transaction(make_client: MakeClient) -> None:
    options = MailOptions(split_recipients=False)
    handler = LimitedHandler(2)
    with limited_server(handler) as port, _client(make_client, port) as client:
        result = client.sendmail(SENDER, FIVE, CONTENT, options=options)
    assert result.delivered == tuple(FIVE[:2])
    assert [address for address, _ in result.failed] == FIVE[2:]
    assert handler.delivered == [tuple(FIVE[:2])]


def test_opt_out_with_rcptmax_refuses_before_sending(make_client: MakeClient) -> None:
    options = MailOptions(split_recipients=False)
    handler = LimitedHandler(2, advertise=True)
    with (
        limited_server(handler) as port,
        _client(make_client, port) as client,
        pytest.raises(SMTPProtocolError, match="RCPTMAX"),
    ):
        client.sendmail(SENDER, FIVE, CONTENT, options=options)
    assert handler.delivered == []


def test_seekable_file_is_sent_again(make_client: MakeClient) -> None:
    handler = LimitedHandler(2, advertise=True)
    source = io.BytesIO(b"ignored" + CONTENT)
    source.seek(len(b"ignored"))
    with limited_server(handler) as port, _client(make_client, port) as client:
        result = client.sendmail(SENDER, FIVE, source)
    assert result.delivered == tuple(FIVE)
    assert handler.contents == [CONTENT] * 3


def test_one_shot_content_over_rcptmax_is_refused_before_sending(make_client: MakeClient) -> None:
    handler = LimitedHandler(2, advertise=True)
    with limited_server(handler) as port, _client(make_client, port) as client:
        with pytest.raises(SMTPProtocolError, match="readable again"):
            client.sendmail(SENDER, FIVE, iter([CONTENT]))
        assert client.session.usable
    assert handler.transactions == []


def test_one_shot_content_past_a_452_keeps_the_refusals(make_client: MakeClient) -> None:
    handler = LimitedHandler(2)
    with limited_server(handler) as port, _client(make_client, port) as client:
        result = client.sendmail(SENDER, FIVE, iter([CONTENT]))
    assert result.delivered == tuple(FIVE[:2])
    assert [address for address, _ in result.failed] == FIVE[2:]
    assert handler.delivered == [tuple(FIVE[:2])]


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
def test_builtin_server_452_4_5_3_rule(make_client: MakeClient, chunking: bool | None) -> None:
    rules = [
        Rule(
            stage="rcpt",
            recipient=address,
            times=1,
            action=Respond(452, "Too many recipients", "4.5.3"),
        )
        for address in FIVE[2:]
    ]
    with run_server(starttls=False, rules=rules, timeout=TIMEOUT) as server:
        with _client(make_client, server.port) as client:
            result = client.sendmail(SENDER, FIVE, CONTENT, chunking=chunking)
        messages = server.wait_for_messages(2, timeout=TIMEOUT)
    assert result.delivered == tuple(FIVE) and result.failed == ()
    assert [m.recipients for m in messages] == [tuple(FIVE[:2]), tuple(FIVE[2:])]
    assert all(m.data == CONTENT and m.sender == SENDER for m in messages)


def test_send_many_does_not_split(make_client: MakeClient) -> None:
    handler = LimitedHandler(2, advertise=True)
    with limited_server(handler) as port, _client(make_client, port) as client:
        outcomes = client.send_many([(SENDER, FIVE, CONTENT), (SENDER, FIVE[:2], CONTENT)])
        assert client.session.usable
    assert isinstance(outcomes[0], SMTPProtocolError) and "RCPTMAX" in str(outcomes[0])
    assert not isinstance(outcomes[1], Exception) and outcomes[1].delivered == tuple(FIVE[:2])
    assert handler.delivered == [tuple(FIVE[:2])]


def test_no_recipient_is_still_a_caller_mistake(make_client: MakeClient) -> None:
    handler = LimitedHandler(2, advertise=True)
    with (
        limited_server(handler) as port,
        _client(make_client, port) as client,
        pytest.raises(SMTPProtocolError, match="at least one recipient"),
    ):
        client.sendmail(SENDER, iter(()), CONTENT)
    assert handler.transactions == []


def test_follow_up_content_refused_is_reported_not_raised(make_client: MakeClient) -> None:
    handler = LimitedHandler(2, advertise=True)
    handler.refuse_data_of = 2
    with limited_server(handler) as port, _client(make_client, port) as client:
        result = client.sendmail(SENDER, FIVE, CONTENT)
        assert client.session.usable
    # A follow-up that delivers to nobody ends the split: r5 is not tried and
    # keeps the refusal that stopped it.
    assert result.delivered == tuple(FIVE[:2])
    assert [(address, reply.code) for address, reply in result.failed] == [
        (address, 554) for address in FIVE[2:]
    ]
    assert handler.delivered == [tuple(FIVE[:2])] and len(handler.transactions) == 2


@pytest.mark.parametrize(("rcptmax", "groups"), [(2, [2, 2, 1]), (1, [1] * 5), (5, [5])])
def test_builtin_server_rcptmax_splits_by_the_advertised_limit(
    make_client: MakeClient, rcptmax: int, groups: list[int]
) -> None:
    # The built-in server advertises LIMITS RCPTMAX (RFC 9422 §4.2); the client reads
    # it and sends groups of at most RCPTMAX, so the server never has to refuse one.
    with run_server(starttls=False, rcptmax=rcptmax, timeout=TIMEOUT) as server:
        with _client(make_client, server.port) as client:
            assert client.capabilities is not None
            assert client.capabilities.limits.rcptmax == rcptmax
            result = client.sendmail(SENDER, FIVE, CONTENT)
        messages = server.wait_for_messages(len(groups), timeout=TIMEOUT)
    assert result.delivered == tuple(FIVE) and result.failed == ()
    assert [len(m.recipients) for m in messages] == groups
    assert [r for m in messages for r in m.recipients] == FIVE


def test_builtin_server_mailmax_is_read_and_enforced(make_client: MakeClient) -> None:
    # MAILMAX=2: the client reads it and never sends a third MAIL on the connection
    # (the server would answer 451 4.5.3): the third message's outcome is the client's
    # refusal, nothing of it sent, and the session stays usable (tests/adapters/
    # test_mailmax.py has the rest).
    items = [(SENDER, [address], CONTENT) for address in FIVE[:3]]
    with run_server(starttls=False, mailmax=2, timeout=TIMEOUT) as server:
        with _client(make_client, server.port) as client:
            assert client.capabilities is not None
            assert client.capabilities.limits.mailmax == 2
            outcomes = client.send_many(items)
            assert client.session.usable
            assert client.noop().code == 250
        assert len(server.wait_for_messages(2, timeout=TIMEOUT)) == 2
    assert [o.delivered for o in outcomes[:2]] == [(FIVE[0],), (FIVE[1],)]  # type: ignore[union-attr]
    refused = outcomes[2]
    assert isinstance(refused, SMTPProtocolError) and not refused.remote
    assert "MAILMAX is 2" in str(refused)
