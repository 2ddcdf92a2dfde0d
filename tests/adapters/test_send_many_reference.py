"""``send_many`` against a reference: ``sendmail`` called once per message.

Hypothesis draws batches whose envelopes the built-in server refuses at random places
(MAIL 550/451, some or all RCPTs 550/450, DATA 554, a BDAT chunk 554, the final reply
554/451), repeated envelopes (the batch reuses the last message's MAIL/RCPT commands)
given as list, tuple or str, contents as bytes, bytearray or str, small or larger
than one chunk, 7-bit or 8-bit; and every ``max_in_flight`` with DATA and with BDAT.
Each outcome must be what ``sendmail`` gives for that message alone (type, replies),
one per message in order, the same messages stored, and the session usable after.

A second test ends the session at a random message and stage (421, or a drop with or
without the message kept): every message stored is reported delivered (or its status
unknown, RFC 1047), every message reported delivered is stored, and the outcomes are
the reference's until one is an outcome of the session's end, as is every one after.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.batch import BatchItem, Outcome
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPProtocolError,
    SMTPReplyError,
)
from smtpproto.testing import Disconnect, Drop, Respond, Rule, run_server

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
OPTIONS: dict[str, Any] = {"tls": "none", "timeout": 10}
EXAMPLES = {"blocking": 30, "asyncio": 10, "trio": 10}

#: What a sender or recipient name makes the server do (regular expressions).
RULES = [
    Rule(stage="mail", sender=re.compile(r"mfail.*"), action=Respond(550, "no sender")),
    Rule(stage="mail", sender=re.compile(r"mtemp.*"), action=Respond(451, "sender later")),
    Rule(stage="rcpt", recipient=re.compile(r"rfail.*"), action=Respond(550, "no rcpt")),
    Rule(stage="rcpt", recipient=re.compile(r"rtemp.*"), action=Respond(450, "rcpt later")),
    Rule(stage="data", sender=re.compile(r"dfail.*"), action=Respond(554, "no data")),
    Rule(stage="bdat", sender=re.compile(r"bfail.*"), action=Respond(554, "no chunk")),
    Rule(stage="data_end", sender=re.compile(r"efail.*"), action=Respond(554, "no content")),
    Rule(stage="data_end", sender=re.compile(r"tfail.*"), action=Respond(451, "content later")),
]
SENDERS = ["ok", "mfail", "mtemp", "dfail", "bfail", "efail", "tfail"]
#: The stages and ways a session can end: sender ``end-<stage>-<how>@x.test``.
ENDINGS = {"421": Disconnect(), "drop": Drop(), "lost": Drop(deliver=False)}
END_STAGES = ["mail", "rcpt", "data", "bdat", "data_end"]
END_RULES = [
    Rule(stage=stage, sender=f"end-{stage}-{how}@x.test", action=action)  # type: ignore[arg-type]
    for stage in END_STAGES
    for how, action in ENDINGS.items()
]

envelopes = st.tuples(
    st.sampled_from(SENDERS).map(lambda kind: f"{kind}@x.test"),
    st.lists(st.sampled_from(["ok", "ok", "rfail", "rtemp"]), min_size=1, max_size=3).map(
        lambda kinds: [f"{kind}{index}@y.test" for index, kind in enumerate(kinds)]
    ),
)


@st.composite
def batches(draw: st.DrawFn) -> list[BatchItem]:
    """Messages over a few envelopes, so that equal envelopes follow each other."""
    pool = draw(st.lists(envelopes, min_size=1, max_size=3))
    items: list[BatchItem] = []
    for index in range(draw(st.integers(1, 12))):
        sender, recipients = draw(st.sampled_from(pool))
        shape = draw(st.sampled_from(["list", "tuple", "str"]))
        given: Any = list(recipients) if shape == "list" else tuple(recipients)
        if shape == "str" and len(recipients) == 1:
            given = recipients[0]
        letter = draw(st.sampled_from([b"x", b"\xc3\xa9"]))  # 7-bit or 8-bit content
        lines = draw(st.sampled_from([1, 3, 1200]))  # 1200 lines: more than one chunk
        data = b"Subject: %d\r\n\r\n" % index + (letter * 35 + b"\r\n") * lines
        content: Any = draw(
            st.sampled_from([data, bytearray(data), data.decode("utf-8", "surrogateescape")])
        )
        items.append((sender, given, content))
    return items


def describe(outcome: Outcome | BaseException) -> tuple[object, ...]:
    """What must match the reference: the type and every reply code and recipient."""
    if isinstance(outcome, TransactionResult):
        return (
            "delivered",
            outcome.sender,
            outcome.delivered,
            tuple((rcpt, reply.code) for rcpt, reply in outcome.recipients),
            None if outcome.data_reply is None else outcome.data_reply.code,
        )
    reply = getattr(outcome, "reply", None)
    return (type(outcome).__name__, None if reply is None else reply.code, str(outcome))


def ended(outcome: Outcome) -> bool:
    """Whether ``outcome`` is what the end of the session gives a message."""
    if isinstance(outcome, SMTPReplyError):
        return outcome.reply.code == 421
    # SMTPProtocolError: the server closed the connection with replies due.
    return isinstance(outcome, (SMTPDeliveryStatusUnknown, SMTPConnectError, SMTPProtocolError))


def octets(item: BatchItem) -> bytes:
    """The content of a tuple item as the server stores it."""
    content = item[2]  # type: ignore[index]
    if isinstance(content, str):
        return content.encode("utf-8", "surrogateescape")
    return bytes(content)


def reference(client: SyncClient, items: list[BatchItem], chunking: bool | None) -> list[object]:
    """``sendmail`` per message: its result or the exception it raises."""
    found: list[object] = []
    for sender, recipients, content in items:  # type: ignore[misc]  # tuples only here
        try:
            found.append(describe(client.sendmail(sender, recipients, content, chunking=chunking)))
        except Exception as error:  # the exception is the outcome
            found.append(describe(error))
    return found


@pytest.mark.parametrize("chunking", [None, False])
def test_send_many_matches_sendmail_message_by_message(
    make_client: MakeClient, adapter: str, chunking: bool | None
) -> None:
    with run_server(starttls=False, rules=RULES) as server:

        @settings(
            max_examples=EXAMPLES[adapter],
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(items=batches(), max_in_flight=st.sampled_from([1, 2, 5, 32]))
        def check(items: list[BatchItem], max_in_flight: int) -> None:
            start = len(server.messages)
            with make_client(host=server.host, port=server.port, **OPTIONS) as client:
                expected = reference(client, items, chunking)
            middle = len(server.messages)
            with make_client(host=server.host, port=server.port, **OPTIONS) as client:
                outcomes = client.send_many(items, chunking=chunking, max_in_flight=max_in_flight)
                assert client.noop().code == 250  # the session is still in step
            end = len(server.messages)
            assert [describe(outcome) for outcome in outcomes] == expected
            stored = [(m.sender, m.recipients, m.data) for m in server.messages[start:end]]
            assert stored[middle - start :] == stored[: middle - start]

        check()


@pytest.mark.parametrize("chunking", [None, False])
def test_a_session_ending_mid_batch_loses_no_report(
    make_client: MakeClient, adapter: str, chunking: bool | None
) -> None:
    with run_server(starttls=False, rules=[*END_RULES, *RULES]) as server:

        @settings(
            max_examples=EXAMPLES[adapter],
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            items=batches(),
            where=st.integers(0, 11),
            stage=st.sampled_from(END_STAGES),
            how=st.sampled_from(sorted(ENDINGS)),
            max_in_flight=st.sampled_from([1, 3, 32]),
        )
        def check(
            items: list[BatchItem], where: int, stage: str, how: str, max_in_flight: int
        ) -> None:
            # The ending message reaches its stage: a recipient is accepted, the content
            # goes by DATA for stage data, by more than one BDAT chunk for stage bdat.
            assume((stage == "data") <= (chunking is False))
            assume((stage == "bdat") <= (chunking is None))
            where = min(where, len(items) - 1)
            lines = 2000 if stage == "bdat" else 1
            content = b"Subject: end\r\n\r\n" + (b"x" * 40 + b"\r\n") * lines
            items[where] = (f"end-{stage}-{how}@x.test", ["ok0@y.test"], content)
            with make_client(host=server.host, port=server.port, **OPTIONS) as client:
                expected = reference(client, items[:where], chunking)
            start = len(server.messages)
            client = make_client(host=server.host, port=server.port, **OPTIONS)
            client.connect()
            try:
                outcomes = client.send_many(items, chunking=chunking, max_in_flight=max_in_flight)
            finally:
                client.close()
            assert where < len(outcomes) <= len(items)
            # The reference's outcomes, up to where the session's end shows: there, and
            # from there on, only outcomes of the end. (A server that closes with part of
            # a pipelined group unread may have the kernel reset the connection, and a
            # reset discards replies it had sent: those messages are then unknown.)
            agreed = 0
            while agreed < where and describe(outcomes[agreed]) == expected[agreed]:
                agreed += 1
            for outcome in outcomes[agreed:]:
                assert ended(outcome), describe(outcome)
            delivered = [
                octets(items[index])
                for index, outcome in enumerate(outcomes)
                if isinstance(outcome, TransactionResult)
            ]
            unknown = [
                octets(items[index])
                for index, outcome in enumerate(outcomes)
                if isinstance(outcome, SMTPDeliveryStatusUnknown)
            ]
            stored = [message.data for message in server.messages[start:]]
            for data in stored:
                assert data in delivered or data in unknown
            for data in delivered:
                assert data in stored

        check()
