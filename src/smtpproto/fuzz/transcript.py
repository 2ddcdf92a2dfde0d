"""Fuzz finding transcripts: the JSON Lines exchange format, read and written exactly.

The format is fixed by ``FUZZ-TRANSCRIPT.md`` (shipped as ``docs/fuzzing.md``'s
"Transcript format" section): one JSON object per line, an optional ``{"header": {...}}``
first line, then events. Each event has ``dir`` (``tcp``, ``c2s``, ``s2c``, ``tls``);
``c2s``/``s2c`` carry ``data_b64`` (standard base64 with padding); ``tcp`` events are
``connect``, ``close``, ``reset`` and ``sleep`` (with ``seconds``, at most 30); ``tls``
events are ``starttls`` and ``close_notify``. Other keys are kept and ignored.

One ``c2s`` event is one write of the client: segment boundaries matter (pipelining,
STARTTLS injection), so the recorder never merges writes and the replayer sends each
payload with one ``sendall``.

The fuzzer adds two optional keys that other tools ignore: ``expect`` on ``c2s`` (how many
replies a correct server sends to this write, used by the live runner to know when to
stop reading) and ``t`` (seconds since the start).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_SLEEP",
    "Event",
    "Transcript",
    "TranscriptError",
    "close",
    "close_notify",
    "connect",
    "recv",
    "reset",
    "send",
    "sleep",
    "starttls",
]

#: The longest pause a ``sleep`` event may ask for (seconds).
MAX_SLEEP = 30.0
#: The largest transcript file ``Transcript.load`` reads (the format asks for a few MB).
MAX_FILE_BYTES = 64 << 20

_TCP_NOTES = frozenset({"connect", "close", "reset", "sleep"})
_TLS_NOTES = frozenset({"starttls", "close_notify"})


class TranscriptError(ValueError):
    """A transcript line breaks the format (the message names the line number)."""


@dataclass(frozen=True)
class Event:
    """One transcript event. ``data`` holds the octets of ``c2s``/``s2c`` events.

    ``expect`` (``c2s`` only) is the number of replies a correct server gives to this
    write; ``extra`` keeps unknown keys so a round trip loses nothing.
    """

    dir: str
    note: str = ""
    data: bytes = b""
    seconds: float = 0.0
    expect: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.dir == "tcp":
            if self.note not in _TCP_NOTES:
                raise TranscriptError(f"unknown tcp note {self.note!r}")
            if self.note == "sleep" and not 0 <= self.seconds <= MAX_SLEEP:
                raise TranscriptError(f"sleep must be 0-{MAX_SLEEP:g} s: {self.seconds!r}")
        elif self.dir == "tls":
            if self.note not in _TLS_NOTES:
                raise TranscriptError(f"unknown tls note {self.note!r}")
        elif self.dir not in ("c2s", "s2c"):
            raise TranscriptError(f"unknown dir {self.dir!r}")

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this event (``extra`` keys first, then the format's keys)."""
        obj: dict[str, Any] = dict(self.extra)
        obj["dir"] = self.dir
        if self.dir in ("c2s", "s2c"):
            obj["data_b64"] = base64.b64encode(self.data).decode("ascii")
            if self.note:
                obj["note"] = self.note
            if self.expect is not None:
                obj["expect"] = self.expect
        else:
            obj["note"] = self.note
            if self.note == "sleep":
                obj["seconds"] = self.seconds
        return obj

    @classmethod
    def from_json(cls, obj: Any, line: int = 0) -> Event:
        """Build an event from a parsed JSON object; ``TranscriptError`` if it is not one."""
        where = f"line {line}: " if line else ""
        if not isinstance(obj, dict):
            raise TranscriptError(f"{where}an event must be a JSON object")
        direction = obj.get("dir")
        if not isinstance(direction, str):
            raise TranscriptError(f"{where}'dir' is required and must be a string")
        data_event = direction in ("c2s", "s2c")
        note = obj.get("note", "")
        if note != "sleep" or data_event:
            # Only a sleep has ``seconds``; elsewhere it is one of the "other keys"
            # that are allowed and ignored, as ``note`` is on data events.
            seconds: Any = 0.0
            known = {"dir", "data_b64", "expect"} if data_event else {"dir", "note"}
        else:
            seconds = obj.get("seconds", 0.0)
            known = {"dir", "note", "seconds"}
        if not data_event and not isinstance(note, str):
            raise TranscriptError(f"{where}'note' must be a string")
        if data_event and isinstance(note, str):
            known.add("note")
        extra = {k: v for k, v in obj.items() if k not in known}
        try:
            if data_event:
                encoded = obj.get("data_b64")
                if not isinstance(encoded, str):
                    raise TranscriptError(f"{where}'data_b64' is required on {direction}")
                try:
                    data = base64.b64decode(encoded.encode("ascii"), validate=True)
                except (binascii.Error, UnicodeEncodeError):
                    raise TranscriptError(f"{where}'data_b64' is not base64") from None
                expect = obj.get("expect")
                if expect is not None and (
                    not isinstance(expect, int) or isinstance(expect, bool) or expect < 0
                ):
                    expect = None
                text = note if isinstance(note, str) else ""
                return cls(direction, text, data, expect=expect, extra=extra)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                raise TranscriptError(f"{where}'seconds' must be a number")
            return cls(direction, note, seconds=float(seconds), extra=extra)
        except TranscriptError as error:
            if where and not str(error).startswith("line "):
                raise TranscriptError(f"{where}{error}") from None
            raise
        except OverflowError:  # an integer too large for a float
            raise TranscriptError(f"{where}'seconds' must be 0-{MAX_SLEEP:g} s") from None


def connect() -> Event:
    """Open a new TCP connection (closing any open one first)."""
    return Event("tcp", "connect")


def close() -> Event:
    """Close the connection normally (after waiting up to 1 s for more data)."""
    return Event("tcp", "close")


def reset() -> Event:
    """Close abortively (RST)."""
    return Event("tcp", "reset")


def sleep(seconds: float) -> Event:
    """Pause (at most ``MAX_SLEEP`` seconds)."""
    return Event("tcp", "sleep", seconds=seconds)


def starttls(*, trigger: bool = False, grace: float = 0.0) -> Event:
    """Do the TLS handshake now (after the server's 220 to STARTTLS); ``trigger`` and
    ``grace`` as for ``send`` (reading after the handshake catches injected replies)."""
    extra: dict[str, Any] = {}
    if trigger:
        extra["trigger"] = True
    if grace:
        extra["grace"] = grace
    return Event("tls", "starttls", extra=extra)


def close_notify() -> Event:
    """Send a TLS close_notify and go on in cleartext."""
    return Event("tls", "close_notify")


def send(
    data: bytes,
    expect: int | None = None,
    note: str = "",
    *,
    trigger: bool = False,
    grace: float = 0.0,
    may_fail: bool = False,
) -> Event:
    """One client write; ``expect`` replies from a correct server. ``trigger`` marks the
    write meant to provoke the flaw; ``grace`` asks the live runner to keep reading
    that long after the expected replies (to see replies a correct server never sends);
    ``may_fail`` says a refusal of this write is part of the probe.
    """
    extra: dict[str, Any] = {}
    if trigger:
        extra["trigger"] = True
    if may_fail:
        extra["may_fail"] = True
    if grace:
        extra["grace"] = grace
    return Event("c2s", note, bytes(data), expect=expect, extra=extra)


def recv(data: bytes) -> Event:
    """Bytes the server sent."""
    return Event("s2c", data=bytes(data))


@dataclass
class Transcript:
    """A header (free-form dict) and the events of one or more connections."""

    events: list[Event] = field(default_factory=list)
    header: dict[str, Any] = field(default_factory=dict)

    def client_events(self) -> list[Event]:
        """The events without the server's bytes: what a runner needs to act it again."""
        return [event for event in self.events if event.dir != "s2c"]

    def lines(self) -> Iterator[str]:
        """The JSONL lines (without line ends)."""
        if self.header:
            yield json.dumps({"header": self.header}, sort_keys=True, default=str)
        for event in self.events:
            yield json.dumps(event.to_json())

    def dumps(self) -> str:
        """The whole file as text (every line ends with LF)."""
        return "".join(line + "\n" for line in self.lines())

    def dump(self, path: str | Path) -> None:
        """Write the transcript to ``path`` (UTF-8)."""
        Path(path).write_text(self.dumps(), encoding="utf-8")

    @classmethod
    def loads(cls, text: str) -> Transcript:
        """Parse JSONL text. Blank lines are skipped; events before the first ``connect``
        are dropped, as the format says. Lines end at LF only (a CR before it is
        dropped): JSON strings may hold U+2028, U+0085 and the like, which
        ``str.splitlines`` would also split at."""
        return cls.from_lines(line.removesuffix("\r") for line in text.split("\n"))

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Transcript:
        header: dict[str, Any] = {}
        events: list[Event] = []
        seen_connect = False
        first = True
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as error:
                raise TranscriptError(f"line {number}: not JSON ({error.msg})") from None
            except (ValueError, RecursionError) as error:  # huge integer, deep nesting
                raise TranscriptError(f"line {number}: not JSON ({error})") from None
            if isinstance(obj, dict) and "header" in obj and "dir" not in obj:
                if not first:
                    raise TranscriptError(f"line {number}: the header must be the first line")
                if not isinstance(obj["header"], dict):
                    raise TranscriptError(f"line {number}: the header must be an object")
                header = obj["header"]
                first = False
                continue
            first = False
            event = Event.from_json(obj, number)
            if event.dir == "tcp" and event.note == "connect":
                seen_connect = True
            if seen_connect:
                events.append(event)
        return cls(events, header)

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        """Read a transcript file (UTF-8, at most ``MAX_FILE_BYTES``); ``TranscriptError``
        names the line that is not UTF-8, and a file too large is refused before reading."""
        with open(path, "rb") as file:
            blob = file.read(MAX_FILE_BYTES + 1)
        if len(blob) > MAX_FILE_BYTES:
            raise TranscriptError(
                f"larger than {MAX_FILE_BYTES >> 20} MiB: not a transcript (keep one under a "
                "few MB)"
            )
        blob = blob.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
        lines: list[str] = []
        for number, raw in enumerate(blob.split(b"\n"), 1):
            try:
                lines.append(raw.removesuffix(b"\r").decode("utf-8"))
            except UnicodeDecodeError as error:
                raise TranscriptError(
                    f"line {number}: not UTF-8 (byte {error.start + 1} of the line)"
                ) from None
        return cls.from_lines(lines)
