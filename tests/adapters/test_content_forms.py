"""Content held whole in the forms the drivers take, sent or refused alike everywhere.

A ``memoryview`` that is not C-contiguous (a strided slice) is content like any other:
its octets in logical order, as the DATA codec twins read it (``wire/_dataenc_c.pyx``,
``_get_simple_buffer``). A ``str`` is sent as UTF-8; one with no UTF-8 form (a lone
surrogate, as ``surrogateescape`` decoding leaves) is the caller's mistake, refused
before MAIL with the session usable, and in ``send_many`` it is that message's
outcome while the batch goes on (the fast lane and the general path). Every adapter,
against the built-in server on 127.0.0.1, over DATA and BDAT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from smtpproto.client_engine.events import TransactionResult
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .facade import SyncClient

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
GOOD = b"Subject: fine\r\n\r\nbody\r\n"
#: A strided view of ``GOOD``: every other octet of a buffer holding it doubled.
STRIDED = bytes(b for pair in zip(GOOD, GOOD, strict=True) for b in pair)
#: Valid for Python, but no UTF-8 form: ``str.encode("utf-8")`` refuses it.
SURROGATE = "Subject: bad\r\n\r\nundecodable \udcff\r\n"


def strided() -> memoryview:
    view = memoryview(STRIDED)[::2]
    assert not view.c_contiguous and view.tobytes() == GOOD
    return view


@pytest.mark.parametrize("chunking", [False, None], ids=["data", "bdat"])
def test_a_strided_memoryview_is_sent_as_its_octets(
    make_client: MakeClient, chunking: bool | None
) -> None:
    """sendmail, and send_many with one envelope (the fast lane leaves a strided view
    to the general path) and with distinct senders: each delivers ``GOOD``."""
    with run_server(starttls=False) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            result = client.sendmail("a@x.test", ["r@x.test"], strided(), chunking=chunking)
            assert result.delivered == ("r@x.test",)
            for senders in (["s@x.test"] * 3, ["s0@x.test", "s1@x.test", "s2@x.test"]):
                items = [(sender, ["r@x.test"], strided()) for sender in senders]
                outcomes = client.send_many(items, chunking=chunking)
                assert all(isinstance(o, TransactionResult) for o in outcomes), outcomes
            assert client.session.usable and client.noop().code == 250
        stored = server.wait_for_messages(7, timeout=TIMEOUT)
    assert [m.data for m in stored] == [GOOD] * 7


def refused_str(outcome: object) -> bool:
    return (
        isinstance(outcome, SMTPProtocolError)
        and not outcome.remote
        and "no UTF-8 form" in str(outcome)
    )


@pytest.mark.parametrize("chunking", [False, None], ids=["data", "bdat"])
def test_a_str_without_utf8_form_is_refused_before_mail(
    make_client: MakeClient, chunking: bool | None
) -> None:
    """sendmail (raw too) refuses it with nothing sent; send_many gives it its
    outcome and delivers the rest, on the fast lane (one envelope) and the general
    path; the server never sees the refused message's MAIL."""
    lines: list[str] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            for raw in (False, True):
                with pytest.raises(SMTPProtocolError, match="no UTF-8 form") as info:
                    client.sendmail(
                        "bad@x.test", ["r@x.test"], SURROGATE, chunking=chunking, raw=raw
                    )
                assert refused_str(info.value)
                assert client.session.usable
            good: Any = GOOD.decode("ascii")
            for senders in (["s@x.test", "s@x.test", "s@x.test"], ["s0@x.test", "bad@x.test"]):
                items = [(senders[0], ["r@x.test"], good)]
                items += [(sender, ["r@x.test"], SURROGATE) for sender in senders[1:]]
                items.append((senders[0], ["r@x.test"], good))
                outcomes = client.send_many(items, chunking=chunking)
                assert isinstance(outcomes[0], TransactionResult)
                assert isinstance(outcomes[-1], TransactionResult)
                assert all(refused_str(o) for o in outcomes[1:-1]), outcomes
            assert client.session.usable and client.noop().code == 250
        stored = server.wait_for_messages(4, timeout=TIMEOUT)
    assert [m.data for m in stored] == [GOOD] * 4
    assert not [line for line in lines if "bad@x.test" in line]
    assert len([line for line in lines if line.startswith("C: MAIL")]) == 4


ASCII = b"Subject: plain\r\n\r\n" + b"ascii body line\r\n" * 6 + b"the end...\r\n"
EIGHT = b"Subject: caf\xc3\xa9\r\n\r\n" + b"ascii body line\r\n" * 6 + b"\xff\xfe end\r\n"


def views(content: bytes) -> list[tuple[str, Any]]:
    """``content`` in every form the drivers take: bytes, bytearray, str when it is
    UTF-8, and memoryviews of other formats, shapes and strides (each of whose octets,
    in logical order, are ``content``)."""
    assert len(content) % 4 == 0  # so that the 'I' and 2-D casts take it
    doubled = bytes(b for pair in zip(content, content, strict=True) for b in pair)
    found: list[tuple[str, Any]] = [
        ("bytes", content),
        ("bytearray", bytearray(content)),
        ("memoryview", memoryview(content)),
        ("view-of-bytearray", memoryview(bytearray(content))),
        ("cast-I", memoryview(content).cast("I")),
        ("cast-c", memoryview(content).cast("c")),
        ("2-D", memoryview(content).cast("B", shape=[len(content) // 4, 4])),
        ("offset-slice", memoryview(b"xy" + content + b"z")[2:-1]),
        ("strided", memoryview(doubled)[::2]),
        ("strided-cast", memoryview(bytearray(doubled))[1::2]),
    ]
    if content.isascii() or b"\xff" not in content:  # valid UTF-8: a str too
        found.append(("str", content.decode("utf-8")))
    for name, form in found:
        if isinstance(form, memoryview):
            assert form.tobytes() == content, name
    return found


@pytest.mark.parametrize("chunking", [False, None], ids=["data", "bdat"])
def test_body_is_decided_by_the_octets_in_every_form(
    make_client: MakeClient, chunking: bool | None
) -> None:
    """RFC 6152: BODY=8BITMIME for 8-bit content only, whatever form holds it -- a
    memoryview of any format, shape or strides is looked into like bytes. sendmail,
    send_many on the fast lane (one envelope) and on the general path (a sender per
    message) declare the same BODY= for the same octets; each message arrives intact."""
    lines: list[str] = []
    expected: list[bytes] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            caps = client.capabilities
            assert caps is not None and caps.eightbitmime
            for kind, content in (("ascii", ASCII), ("eight", EIGHT)):
                forms_ = views(content)
                for name, form in forms_:
                    sender = f"one-{kind}-{name}@x.test"
                    client.sendmail(sender, ["r@x.test"], form, chunking=chunking)
                    expected.append(content)
                items = [(f"many-{kind}@x.test", ["r@x.test"], form) for _, form in forms_]
                items += [(f"gen-{kind}-{n}@x.test", ["r@x.test"], f) for n, f in forms_]
                outcomes = client.send_many(items, chunking=chunking)
                assert all(isinstance(o, TransactionResult) for o in outcomes), outcomes
                expected += [content] * len(items)
            assert client.session.usable
        stored = server.wait_for_messages(len(expected), timeout=TIMEOUT)
    assert [m.data for m in stored] == expected
    mails = [line for line in lines if line.startswith("C: MAIL")]
    assert len(mails) == len(expected)
    for line in mails:
        assert ("BODY=8BITMIME" in line) == ("-eight" in line), line
