"""An independent check of FUZZ-TRANSCRIPT.md, written from the spec alone (``json`` and
``base64``, nothing of smtpproto), for the files the fuzzer writes.

``problems(blob)`` lists every rule a transcript file breaks (empty: it conforms):
UTF-8 lines ended by LF, one JSON object each; the header only first; ``dir`` one of
``c2s``, ``s2c``, ``tls``, ``tcp``; ``data_b64`` standard base64 with padding; the known
notes; ``sleep`` 0-30 s; the first event a connect; a ``starttls`` right after the ``s2c``
that holds a final 220 line, answering a write that holds a ``STARTTLS`` line; under a few MB.
``finding_problems`` adds what a claimed finding needs: a header naming an oracle, and
(but for a crash) a write marked as the trigger.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

MAX_BYTES = 4 << 20
_B64 = re.compile(rb"\A(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
_NOTES = {"tcp": {"connect", "close", "reset", "sleep"}, "tls": {"starttls", "close_notify"}}


def _decode(value: object) -> bytes | None:
    if not isinstance(value, str) or not _B64.match(value.encode("ascii", "replace")):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return None


def _final_220(data: bytes) -> bool:
    lines = data.split(b"\n")[:-1]
    return bool(lines) and lines[-1].rstrip(b"\r")[:4] in (b"220 ", b"220")


def events(blob: bytes) -> list[dict[str, object]]:
    """The event objects of a conforming file (call ``problems`` first)."""
    lines = blob.decode("utf-8").split("\n")[:-1]
    return [obj for obj in map(json.loads, lines) if "dir" in obj]


def problems(blob: bytes) -> list[str]:
    """Every rule of FUZZ-TRANSCRIPT.md the file ``blob`` breaks."""
    found: list[str] = []
    if len(blob) > MAX_BYTES:
        found.append(f"{len(blob)} bytes: more than a few MB")
    if not blob.endswith(b"\n"):
        found.append("the last line has no LF")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return [*found, "not UTF-8"]
    previous: dict[str, object] | None = None  # the event before, if any
    last_write = b""
    connected = False
    for number, line in enumerate(text.split("\n")[:-1], 1):
        try:
            obj = json.loads(line)
        except ValueError:
            found.append(f"line {number}: not JSON")
            continue
        if not isinstance(obj, dict):
            found.append(f"line {number}: not an object")
            continue
        if "header" in obj and "dir" not in obj:
            if number != 1 or not isinstance(obj["header"], dict):
                found.append(f"line {number}: a header that is not the first line's object")
            continue
        direction = obj.get("dir")
        if direction in ("c2s", "s2c"):
            data = _decode(obj.get("data_b64"))
            if data is None:
                found.append(f"line {number}: data_b64 is not standard padded base64")
                data = b""
            if direction == "c2s":
                last_write = data
        elif direction in _NOTES:
            note = obj.get("note")
            if note not in _NOTES[direction]:
                found.append(f"line {number}: unknown {direction} note {note!r}")
            if note == "sleep":
                seconds = obj.get("seconds")
                if not isinstance(seconds, (int, float)) or not 0 <= seconds <= 30:
                    found.append(f"line {number}: sleep of {seconds!r} s")
            if note == "connect":
                connected = True
            if note == "starttls":
                before = _decode(previous.get("data_b64")) if previous else None
                if previous is None or previous.get("dir") != "s2c" or not before:
                    found.append(f"line {number}: starttls not right after an s2c event")
                elif not _final_220(before):
                    found.append(f"line {number}: starttls after an s2c without a final 220")
                commands = [c.strip().upper() for c in last_write.split(b"\n")]
                if b"STARTTLS" not in commands:
                    found.append(f"line {number}: starttls after a write without STARTTLS")
        else:
            found.append(f"line {number}: dir {direction!r}")
            continue
        if not connected:
            found.append(f"line {number}: an event before the first connect")
        previous = obj
    return found


def finding_problems(blob: bytes) -> list[str]:
    """``problems`` plus what one claimed finding of ``smtpproto fuzz`` carries."""
    found = problems(blob)
    if found:
        return found
    header = json.loads(blob.decode("utf-8").split("\n", 1)[0]).get("header")
    oracle = header.get("oracle") if isinstance(header, dict) else None
    if not oracle:
        found.append("no header naming the oracle")
    # A crash is judged on the whole run and a fresh connection: no trigger needed.
    if oracle != "crash" and not any(event.get("trigger") is True for event in events(blob)):
        found.append("no write marked as the trigger")
    return found
