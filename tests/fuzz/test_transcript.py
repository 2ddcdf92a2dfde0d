"""The JSONL transcript format (FUZZ-TRANSCRIPT.md): round trip, rules, refusals."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.fuzz.transcript import (
    MAX_FILE_BYTES,
    Event,
    Transcript,
    TranscriptError,
    close,
    close_notify,
    connect,
    recv,
    reset,
    send,
    sleep,
    starttls,
)

SPEC_EXAMPLE = """\
{"header": {"tool": "example", "verdict": "unsolicited-reply-after-tls"}}
{"dir": "tcp", "note": "connect"}
{"dir": "s2c", "data_b64": "MjIwIG14IEVTTVRQDQo="}
{"dir": "c2s", "data_b64": "RUhMTyB4DQo="}
{"dir": "s2c", "data_b64": "MjUwLW14DQoyNTAgU1RBUlRUTFMNCg=="}
{"dir": "c2s", "data_b64": "U1RBUlRUTFMNCk5PT1ANCg=="}
{"dir": "s2c", "data_b64": "MjIwIGdvDQo="}
{"dir": "tls", "note": "starttls"}
{"dir": "s2c", "data_b64": "MjUwIE9LDQo="}
{"dir": "tcp", "note": "close"}
"""


def test_the_spec_example_parses() -> None:
    transcript = Transcript.loads(SPEC_EXAMPLE)
    assert transcript.header["verdict"] == "unsolicited-reply-after-tls"
    assert [e.dir for e in transcript.events] == [
        "tcp", "s2c", "c2s", "s2c", "c2s", "s2c", "tls", "s2c", "tcp",
    ]  # fmt: skip
    assert transcript.events[4].data == b"STARTTLS\r\nNOOP\r\n"  # one write, kept whole
    assert transcript.events[6].note == "starttls"


def test_round_trip_keeps_every_event_and_unknown_key(tmp_path: Path) -> None:
    events = [
        connect(),
        recv(b"220 x\r\n"),
        send(b"EHLO a\r\n", 1),
        send(b"STARTTLS\r\nNOOP\r\n", 1, trigger=True, grace=0.5),
        starttls(trigger=True),
        close_notify(),
        sleep(1.5),
        reset(),
        connect(),
        close(),
    ]
    original = Transcript(events, {"oracle": "unsolicited", "params": {"a": 1}})
    path = tmp_path / "t.jsonl"
    original.dump(path)
    again = Transcript.load(path)
    assert again.header == original.header
    assert again.events == original.events
    assert again.events[3].extra == {"trigger": True, "grace": 0.5}
    assert again.dumps() == original.dumps()


def test_every_line_is_one_json_object_with_dir() -> None:
    text = Transcript([connect(), send(b"\x00\xff\r\n", 1)], {"x": 1}).dumps()
    lines = text.splitlines()
    assert json.loads(lines[0]) == {"header": {"x": 1}}
    for line in lines[1:]:
        assert "dir" in json.loads(line)
    assert base64.b64decode(json.loads(lines[2])["data_b64"]) == b"\x00\xff\r\n"


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_any_bytes_round_trip(chunks: list[bytes]) -> None:
    events = [connect()] + [send(c) if i % 2 else recv(c) for i, c in enumerate(chunks)]
    assert Transcript.loads(Transcript(events).dumps()).events == events


def test_events_before_the_first_connect_are_ignored() -> None:
    text = '{"dir": "c2s", "data_b64": "QQ=="}\n{"dir": "tcp", "note": "connect"}\n'
    assert Transcript.loads(text).events == [connect()]


def test_unknown_keys_are_allowed_and_blank_lines_skipped() -> None:
    text = (
        '\n{"dir": "tcp", "note": "connect", "t": 0.5}\n\n'
        '{"dir": "c2s", "data_b64": "", "seg": 1}\n'
    )
    transcript = Transcript.loads(text)
    assert transcript.events[1] == Event("c2s", data=b"")
    assert transcript.events[1].extra == {"seg": 1}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"note": "connect"}', "'dir' is required"),
        ('{"dir": "udp", "note": "x"}', "unknown dir"),
        ('{"dir": "tcp", "note": "open"}', "unknown tcp note"),
        ('{"dir": "tls", "note": "renegotiate"}', "unknown tls note"),
        ('{"dir": "c2s"}', "'data_b64' is required"),
        ('{"dir": "s2c", "data_b64": "!!!"}', "not base64"),
        ('{"dir": "tcp", "note": "sleep", "seconds": 31}', "sleep must be"),
        ('{"dir": "tcp", "note": "sleep", "seconds": "1"}', "must be a number"),
    ],
)
def test_broken_lines_are_refused_with_their_line_number(line: str, message: str) -> None:
    text = '{"dir": "tcp", "note": "connect"}\n' + line + "\n"
    with pytest.raises(TranscriptError, match=message) as caught:
        Transcript.loads(text)
    assert "line 2" in str(caught.value)


def test_a_header_after_events_is_refused() -> None:
    text = '{"dir": "tcp", "note": "connect"}\n{"header": {}}\n'
    with pytest.raises(TranscriptError, match="first line"):
        Transcript.loads(text)


def test_client_events_drop_the_server_bytes() -> None:
    transcript = Transcript([connect(), recv(b"220\r\n"), send(b"QUIT\r\n", 1), close()])
    assert [e.dir for e in transcript.client_events()] == ["tcp", "c2s", "tcp"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_json_strings_may_hold_unicode_line_separators(tmp_path: Path, separator: str) -> None:
    # JSON Lines ends a line at LF only; str.splitlines() also splits at these characters,
    # which are valid unescaped inside a JSON string (another tool's banner, say).
    text = (
        json.dumps({"header": {"banner": f"220 a{separator}b"}}, ensure_ascii=False)
        + "\r\n"
        + json.dumps({"dir": "tcp", "note": "connect", "t": f"x{separator}"}, ensure_ascii=False)
        + "\n"
    )
    path = tmp_path / "t.jsonl"
    path.write_bytes(text.encode("utf-8"))
    for transcript in (Transcript.loads(text), Transcript.load(path)):
        assert transcript.header == {"banner": f"220 a{separator}b"}
        assert transcript.events == [connect()]


@pytest.mark.parametrize(
    "line",
    [
        '{"dir": "c2s", "data_b64": "QQ==", "note": 5}',  # note on a data event: ignored
        '{"dir": "tcp", "note": "close", "seconds": "soon"}',  # seconds outside sleep
        '{"dir": "tcp", "note": "reset", "seconds": [1]}',
        '{"dir": "tls", "note": "close_notify", "seconds": null}',
    ],
)
def test_other_keys_are_ignored_whatever_their_value(line: str) -> None:
    text = '{"dir": "tcp", "note": "connect"}\n' + line + "\n"
    transcript = Transcript.loads(text)
    assert len(transcript.events) == 2
    assert json.loads(transcript.dumps().splitlines()[1]) == json.loads(line)  # kept as is


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"dir": "tcp", "note": "connect", "x": ' + "[" * 50_000 + "]" * 50_000 + "}", "JSON"),
        ('{"dir": "tcp", "note": "connect", "x": ' + "9" * 5000 + "}", "JSON"),
        ('{"dir": "tcp", "note": "sleep", "seconds": ' + "9" * 400 + "}", "seconds"),
    ],
)
def test_pathological_lines_are_refused_with_their_line_number(line: str, message: str) -> None:
    text = '{"dir": "tcp", "note": "connect"}\n' + line + "\n"
    with pytest.raises(TranscriptError, match=message) as caught:
        Transcript.loads(text)
    assert str(caught.value).startswith("line 2: ")


def test_a_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"dir": "tcp", "note": "connect"}\n\n{"dir": "c2s", "x": "\xff"}\n')
    with pytest.raises(TranscriptError, match=r"^line 3: not UTF-8"):
        Transcript.load(path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"header": {"a": 1}}\n{"dir": "tcp", "note": "connect"}\n')
    assert Transcript.load(path).header == {"a": 1}


def test_a_header_after_ignored_events_is_still_not_first() -> None:
    text = '{"dir": "c2s", "data_b64": ""}\n{"header": {}}\n{"dir": "tcp", "note": "connect"}\n'
    with pytest.raises(TranscriptError, match="line 2: the header must be the first line"):
        Transcript.loads(text)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(TranscriptError, match="MiB"):
        Transcript.load(path)
