"""``drivers.split``'s rules: which RCPT refusals are "too many recipients" (RFC 5321
§4.5.3.1.10, RFC 3463 X.5.3) and how content is given again; the end-to-end behaviour
is in ``tests/adapters/test_recipient_limits.py``."""

from __future__ import annotations

import io

import pytest

from smtpproto.drivers.split import groups_of, replayer, too_many
from smtpproto.wire.reply import Reply


def _reply(code: int, text: str) -> Reply:
    return Reply(code=code, raw_lines=(text.encode(),))


@pytest.mark.parametrize(
    ("code", "text", "accepted_before", "expected"),
    [
        (452, "4.5.3 Too many recipients", False, True),
        (452, "4.5.3 Too many recipients", True, True),
        (552, "5.5.3 Too many recipients", False, True),
        (452, "Too many recipients", True, True),
        (452, "Insufficient system storage", False, False),
        (452, "4.2.2 Mailbox full", True, False),
        (452, "4.3.1 Out of storage", True, False),
        (451, "4.5.3 Too many recipients", True, False),
        (552, "5.3.4 Message too big", True, False),
        (550, "5.1.1 No such user", True, False),
        (452, "4.5.4 Invalid parameters", True, False),
    ],
)
def test_too_many(code: int, text: str, accepted_before: bool, expected: bool) -> None:
    assert too_many(_reply(code, text), accepted_before) is expected


def test_groups_of() -> None:
    assert groups_of(("a", "b", "c"), 2) == ("a", "b")
    assert groups_of(("a", "b", "c"), None) == ("a", "b", "c")


def test_replayer() -> None:
    assert replayer(iter([b"x"])) is None
    again = replayer(b"abc")
    assert again is not None and again() == b"abc"
    source = io.BytesIO(b"skip-body")
    source.seek(5)
    again = replayer(source)
    source.read()
    assert again is not None and again() is source and source.read() == b"body"
