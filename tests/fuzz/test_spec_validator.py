"""The independent FUZZ-TRANSCRIPT.md validator (``spec_validator``) flags every rule it
checks, passes the spec's own example, and passes what ``Transcript`` writes."""

from __future__ import annotations

import pytest

from smtpproto.fuzz.transcript import Transcript, close, close_notify, connect, recv, send

from .spec_validator import finding_problems, problems
from .test_transcript import SPEC_EXAMPLE

CONNECT = b'{"dir": "tcp", "note": "connect"}\n'


def test_the_spec_example_conforms() -> None:
    assert problems(SPEC_EXAMPLE.encode()) == []


def test_what_the_library_writes_conforms() -> None:
    events = [connect(), recv(b"220 x\r\n"), send(b"NOOP\r\n", 1, trigger=True)]
    events += [recv(b"250 ok\r\n"), close_notify(), close()]
    blob = Transcript(events, {"oracle": "accepted"}).dumps().encode()
    assert finding_problems(blob) == []


@pytest.mark.parametrize(
    ("blob", "rule"),
    [
        (CONNECT + b'{"dir": "c2s", "data_b64": "QQ"}\n', "padded base64"),
        (CONNECT + b'{"dir": "c2s", "data_b64": "-_8="}\n', "padded base64"),
        (CONNECT + b'{"dir": "c2s", "data_b64": "QQ==\\n"}\n', "padded base64"),
        (CONNECT + b'{"dir": "udp"}\n', "dir 'udp'"),
        (CONNECT + b'{"dir": "tcp", "note": "open"}\n', "unknown tcp note"),
        (CONNECT + b'{"dir": "tcp", "note": "sleep", "seconds": 31}\n', "sleep of 31"),
        (CONNECT + b'{"dir": "tcp", "note": "sleep", "seconds": -1}\n', "sleep of -1"),
        (CONNECT + b'{"header": {}}\n', "not the first line"),
        (b'{"dir": "c2s", "data_b64": ""}\n' + CONNECT, "before the first connect"),
        (CONNECT + b"[1]\n", "not an object"),
        (CONNECT + b"{\n", "not JSON"),
        (CONNECT + b'{"dir": "tcp", "note": "close", "x": "\xff"}\n', "not UTF-8"),
        (CONNECT[:-1], "no LF"),
        (CONNECT + b'{"dir": "c2s", "data_b64": "U1RBUlRUTFMNCg=="}\n'
         b'{"dir": "tls", "note": "starttls"}\n', "not right after an s2c"),
        (CONNECT + b'{"dir": "c2s", "data_b64": "U1RBUlRUTFMNCg=="}\n'
         b'{"dir": "s2c", "data_b64": "NDU0IG5vDQo="}\n'  # 454 no
         b'{"dir": "tls", "note": "starttls"}\n', "without a final 220"),
        (CONNECT + b'{"dir": "c2s", "data_b64": "Tk9PUA0K"}\n'  # NOOP
         b'{"dir": "s2c", "data_b64": "MjIwIGdvDQo="}\n'  # 220 go
         b'{"dir": "tls", "note": "starttls"}\n', "without STARTTLS"),
    ],
)  # fmt: skip
def test_each_rule_is_checked(blob: bytes, rule: str) -> None:
    assert any(rule in problem for problem in problems(blob)), problems(blob)


def test_a_finding_names_its_oracle_and_trigger() -> None:
    blob = Transcript([connect(), send(b"NOOP\r\n", 1)]).dumps().encode()
    assert finding_problems(blob) == [
        "no header naming the oracle",
        "no write marked as the trigger",
    ]
