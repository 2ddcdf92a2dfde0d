"""Terminal output of the command line: the live transcript, the progress bar, tables.

This is part of the CLI adapter layer (it reads the clock); the engine never imports it.

Theory of operation
-------------------
``Transcript`` is the engine's transcript hook (``ClientConfig.transcript``, called with
``"C"`` or ``"S"`` and one line without its CRLF; AUTH lines arrive already redacted)
plus a clock: each line is printed as ``[  0.012s] -> EHLO host``. Lines sent or received
under TLS use swaks' marks ``~>`` / ``<~`` instead of ``->`` / ``<-``: before each line
the transcript asks ``tls_info`` whether TLS is up, and at the first line under TLS it
adds a note naming the version and cipher. Every line is escaped with
``wire.text.escape_text`` first (docs/design.md §4 rule 12): a server cannot move the cursor
or forge a line of the transcript.

``ProgressBar`` draws on stderr, and only when stderr is a terminal and the body is at
least ``PROGRESS_MIN_BYTES``: a pipe or a log file never gets carriage returns. Redraws
are throttled to ``PROGRESS_INTERVAL`` seconds.

``format_table`` lays out ``(label, value)`` rows in two aligned columns, escaping both.
"""

from __future__ import annotations

import os
import re
import threading
import time  # noqa: TID251 -- CLI adapter layer: transcript stamps and progress rates
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TextIO

from ..wire.text import escape_text
from ..wire.twins import ReplyParser

__all__ = [
    "PROGRESS_INTERVAL",
    "PROGRESS_MIN_BYTES",
    "Console",
    "ProgressBar",
    "SessionRecord",
    "Transcript",
    "error_text",
    "format_message",
    "format_size",
    "format_table",
    "use_color",
]

#: Bodies smaller than this (1 MiB) are sent too fast for a bar to mean anything.
PROGRESS_MIN_BYTES = 1 << 20
#: Seconds between two redraws of the bar (ten a second is smooth and cheap).
PROGRESS_INTERVAL = 0.1
#: Width of the bar itself, in cells, inside its brackets.
_BAR_WIDTH = 30

_ARROWS: dict[tuple[str, bool], str] = {
    ("C", False): "->",
    ("S", False): "<-",
    ("C", True): "~>",
    ("S", True): "<~",
}


#: ANSI colours (SGR) per kind of line: sent, received, received error, note, TLS mark.
_COLORS = {
    "send": "36",  # cyan
    "receive": "32",  # green
    "error": "31",  # red: a 4yz/5yz reply
    "info": "33",  # yellow: notes and hints
    "tls": "35",  # magenta: the ~> / <~ marks under TLS
}


_CONTENT = re.compile(rb"<content: (\d+) octets, (\d+) line ends>")


class _ContentTally:
    """Folds a message's content lines into one (``Transcript(collapse_content=True)``).

    Fed every transcript line, returns the lines to show: content summaries are added
    up and shown once, before the DATA terminator ``.`` or after the content of
    ``BDAT ... LAST``; a BDAT chunk before the last is counted, not shown, and so is
    the 2yz reply to it (replies come in order, RFC 2920 §3.1: one per chunk).
    """

    def __init__(self) -> None:
        self.octets = self.line_ends = self.chunks = self.awaited = 0
        self.parts = 0
        self.last_sent = False

    def _summary(self) -> bytes:
        text = b"<content: %d octets, %d line ends" % (self.octets, self.line_ends)
        if self.chunks:
            text += b", in %d BDAT chunks" % (self.chunks + 1)
        self.octets = self.line_ends = self.chunks = self.parts = 0
        self.last_sent = False
        return text + b">"

    def filter(self, direction: str, line: bytes) -> list[bytes]:
        if direction == "S":
            if self.awaited and line[:1] == b"2":
                if line[3:4] != b"-":
                    self.awaited -= 1
                return []
            if self.awaited and line[3:4] != b"-":
                self.awaited -= 1
            return [line]
        found = _CONTENT.fullmatch(line)
        if found is not None:
            self.octets += int(found[1])
            self.line_ends += int(found[2])
            self.parts += 1
            return [self._summary()] if self.last_sent else []
        if line.startswith(b"BDAT "):
            if line.endswith(b" LAST"):
                self.last_sent = True
                return [line]
            self.chunks += 1
            self.awaited += 1
            return []
        self.last_sent = False  # BDAT LAST of empty content: no content line came
        if line == b"." and self.parts:
            return [self._summary(), line]
        return [line]


def use_color(mode: Literal["auto", "always", "never"], stream: TextIO) -> bool:
    """Whether to colour output to ``stream``: ``always``/``never`` as said; ``auto``
    only on a terminal and only when ``NO_COLOR`` is unset or empty (no-color.org: a
    command-line choice overrides it)."""
    if mode != "auto":
        return mode == "always"
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def error_text(text: str, stream: TextIO, mode: Literal["auto", "always", "never"]) -> str:
    """``text`` (an error line for ``stream``) in the colour of errors when ``stream``
    gets colours (``use_color``), so it stands out from the transcript above it."""
    if not use_color(mode, stream):
        return text
    return f"\x1b[{_COLORS['error']}m{text}\x1b[0m"


class Console:
    """The one owner of the terminal: whole lines to ``out`` (the transcript) and one
    status line on ``err`` (the progress bar), under one lock.

    When both streams are the same terminal, a status line drawn with ``\r`` would be
    overwritten by (and would overwrite) transcript lines: ``line`` therefore erases
    the status line first and redraws it after the new line, so the bar always stays
    below the transcript. A failed write to ``out`` (a closed pipe) silences it
    instead of failing the caller (``line`` returns False from then on).
    """

    def __init__(self, out: TextIO, err: TextIO, *, shared: bool | None = None) -> None:
        self.out: TextIO | None = out
        self.err = err
        if shared is None:
            shared = _isatty(out) and _isatty(err)
        #: Whether ``out`` and ``err`` share one screen (the status must make way).
        self.shared = shared
        self._status = ""
        self._lock = threading.Lock()
        #: With ``send --json``: where the session is kept instead of printed.
        self.record: SessionRecord | None = None

    def line(self, text: str) -> bool:
        """Write ``text`` and a newline to ``out``; False once ``out`` has failed."""
        with self._lock:
            if self.out is None:
                return False
            hide = self.shared and self._status
            try:
                if hide:
                    self.err.write("\r\x1b[K")
                    self.err.flush()
                self.out.write(text + "\n")
                self.out.flush()
            except OSError:  # the reader went away (| head): the session goes on
                self.out = None
                return False
            finally:
                if hide:
                    self.err.write(self._status)
                    self.err.flush()
            return True

    def status(self, text: str) -> None:
        """Show ``text`` as the status line on ``err`` (replacing the last one)."""
        with self._lock:
            self._status = "\r" + text + "\x1b[K"
            self.err.write(self._status)
            self.err.flush()

    def end_status(self) -> None:
        """Keep the last status line on screen and move below it."""
        with self._lock:
            if self._status:
                self.err.write("\n")
                self.err.flush()
            self._status = ""


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # closed
        return False


class Transcript:
    """A transcript hook that prints each protocol line with a time stamp and direction.

    ``stream`` is where lines go (stdout for the CLI); ``clock`` returns seconds and is
    read once at construction for the origin, so stamps are elapsed times. ``prefix`` is
    put before every line. ``tls_info`` returns ``None`` while the connection is in
    cleartext and a description (version, cipher) once TLS is up; it is asked before each
    line, so the first line under TLS is preceded by a note and gets the TLS arrows.
    Safe to call from several threads: one lock serialises whole lines. A failed write
    (a closed pipe) silences the transcript instead of failing the session: the hook is
    called from inside the engine, where an ``OSError`` would look like a lost
    connection.

    ``collapse_content`` (default) shows a message's content as one line however it
    was written: the engine's per-write ``<content: ...>`` summaries and the BDAT
    chunks before the last (with their 250 replies) become one ``<content: N octets,
    M line ends[, in K BDAT chunks]>`` line (``_ContentTally``); refusals still show.

    Output control (swaks' ``--hide-*`` and ``--show-time-lapse``): ``hide`` names the
    kinds of line not printed, ``"send"``, ``"receive"`` and ``"info"`` (notes and
    hints); ``timestamps`` False drops the ``[  0.012s]`` column; ``color`` wraps each
    line in ANSI colours (``use_color`` decides). ``console`` (default: one on
    ``stream`` alone) is shared with the ``ProgressBar`` so the two never overwrite
    each other.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "",
        tls_info: Callable[[], str | None] | None = None,
        hide: Iterable[str] = (),
        timestamps: bool = True,
        color: bool = False,
        console: Console | None = None,
        collapse_content: bool = True,
    ) -> None:
        self._console = console if console is not None else Console(stream, stream, shared=False)
        self._clock = clock
        self._start = clock()
        self._prefix = prefix
        self._tls_info = tls_info
        self._hide = frozenset(hide)
        unknown = self._hide - {"send", "receive", "info"}
        if unknown:
            raise ValueError(f"unknown kinds of line to hide: {sorted(unknown)}")
        self._timestamps = timestamps
        self._color = color
        self._collapse = collapse_content
        self._content = _ContentTally()
        #: True once TLS protects the connection; switches the arrows to ``~>`` / ``<~``.
        self.tls = False

    def _check_tls(self) -> None:
        """Ask ``tls_info`` (if given) whether TLS is up now; note the moment it starts."""
        if self._tls_info is None or self.tls:
            return
        description = self._tls_info()
        if description is not None:
            self.tls = True
            self.note(f"TLS established: {description}")

    def elapsed(self) -> float:
        """Seconds since the transcript began."""
        return self._clock() - self._start

    def _emit(self, kind: str, mark: str, text: str) -> None:
        if kind in self._hide:
            return
        stamp = f"[{self.elapsed():8.3f}s] " if self._timestamps else ""
        if self._color:
            color = _COLORS["error" if kind == "receive" and text[:1] in "45" else kind]
            if mark in ("~>", "<~"):
                mark = f"\x1b[{_COLORS['tls']}m{mark}\x1b[0m"
            text = f"\x1b[{color}m{text}\x1b[0m"
        self._console.line(f"{self._prefix}{stamp}{mark} {text}")

    def __call__(self, direction: Literal["C", "S"], line: bytes) -> None:
        """Print one line; ``direction`` is ``"C"`` (we sent it) or ``"S"`` (received).

        Bytes that are not UTF-8 show as U+FFFD; control characters show escaped.
        """
        self._check_tls()
        if self._collapse:
            for shown in self._content.filter(direction, line):
                self._show(direction, shown)
        else:
            self._show(direction, line)

    def _show(self, direction: Literal["C", "S"], line: bytes) -> None:
        text = escape_text(line.decode("utf-8", "replace"))
        kind = "send" if direction == "C" else "receive"
        self._emit(kind, _ARROWS[(direction, self.tls)], text)

    def note(self, text: str) -> None:
        """Print an event that is not a protocol line (connected, TLS started, ...)."""
        self._emit("info", "==", escape_text(text))


class SessionRecord:
    """A transcript hook that keeps the session as data, for ``send --json``.

    ``lines`` holds every line (``dir`` ``"C"``, ``"S"`` or ``"note"``, the text,
    ``t`` seconds since the start); ``replies`` pairs each complete reply with the
    command it answers (replies come in command order, RFC 2920 §3.1; the greeting
    answers none), with the round trip in ms. Content summaries get no reply of their
    own. ``as_dict`` adds the outcome.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()
        self._parser = ReplyParser()
        self._waiting: deque[tuple[str | None, float]] = deque()
        self.lines: list[dict[str, object]] = []
        self.replies: list[dict[str, object]] = []
        self.tls: str | None = None
        self._greeted = False

    def _now(self) -> float:
        return self._clock() - self._start

    def __call__(self, direction: Literal["C", "S"], line: bytes) -> None:
        now = self._now()
        text = line.decode("utf-8", "replace")
        self.lines.append({"t": round(now, 4), "dir": direction, "line": text})
        if direction == "C":
            if not text.startswith("<content: "):
                self._waiting.append((text, now))
            return
        for reply in self._parser.feed(line + b"\r\n"):
            command, sent = None, 0.0
            if self._greeted and self._waiting:
                command, sent = self._waiting.popleft()
            self._greeted = True
            self.replies.append(
                {
                    "command": command,
                    "code": reply.code,
                    "lines": list(reply.lines),
                    "ms": round((now - sent) * 1000, 1),
                }
            )

    def note(self, text: str) -> None:
        self.lines.append({"t": round(self._now(), 4), "dir": "note", "line": text})

    def as_dict(self, *, exit_code: int, error: str | None) -> dict[str, object]:
        """The whole session and its outcome, ready for ``json.dumps``."""
        return {
            "outcome": {"exit_code": exit_code, "ok": exit_code == 0, "error": error},
            "tls": self.tls,
            "replies": self.replies,
            "transcript": self.lines,
            "total_ms": round(self._now() * 1000, 1),
        }


def format_size(size: float) -> str:
    """``size`` octets in binary units with one decimal (``"1.5 MiB"``; bytes exact)."""
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


class ProgressBar:
    """A one-line progress bar for sending ``total`` octets of content.

    Draws only when ``enabled`` (the caller passes ``stream.isatty()``) and ``total`` is
    at least ``PROGRESS_MIN_BYTES``; otherwise every method does nothing. ``update`` takes
    the number of octets sent so far (never more than ``total`` is shown); ``finish``
    draws 100 % once and ends the line, and is idempotent.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
        console: Console | None = None,
    ) -> None:
        self.total = total
        self.active = enabled and total >= PROGRESS_MIN_BYTES
        self._console = console if console is not None else Console(stream, stream, shared=False)
        self._clock = clock
        self._start = clock()
        self._last_draw: float | None = None
        self._done = 0
        self._finished = False

    def render(self, done: int, elapsed: float) -> str:
        """The bar's text for ``done`` octets after ``elapsed`` seconds (no control codes)."""
        done = max(0, min(done, self.total))
        fraction = done / self.total if self.total else 1.0
        filled = int(fraction * _BAR_WIDTH)
        rate = format_size(done / elapsed) + "/s" if elapsed > 0 else "-"
        return (
            f"[{'#' * filled}{' ' * (_BAR_WIDTH - filled)}] {fraction * 100:3.0f}% "
            f"{format_size(done)} / {format_size(self.total)} {rate}"
        )

    def update(self, done: int) -> None:
        """Record ``done`` octets sent; redraw at most every ``PROGRESS_INTERVAL``."""
        if not self.active or self._finished:
            return
        self._done = done
        now = self._clock()
        if self._last_draw is not None and now - self._last_draw < PROGRESS_INTERVAL:
            return
        self._last_draw = now
        self._draw(done, now)

    def _draw(self, done: int, now: float) -> None:
        # The console writes "\r" (back to the start of the line), the bar, and "\x1b[K"
        # (clear what a longer line left); transcript lines make way for it.
        self._console.status(self.render(done, now - self._start))

    def finish(self) -> None:
        """Draw the final state and end the line (only if the bar was ever active)."""
        if not self.active or self._finished:
            return
        self._finished = True
        self._draw(self.total, self._clock())
        self._console.end_status()


def format_table(rows: Iterable[tuple[str, object]], *, indent: str = "  ") -> str:
    """Two aligned columns: labels padded to the longest, values escaped.

    A value that is a sequence of strings (not a ``str``) is listed one per line under
    the first, aligned with it; an empty sequence shows as ``-``; ``None`` as ``-``.
    """
    materialised = list(rows)
    width = max((len(label) for label, _ in materialised), default=0)
    out: list[str] = []
    for label, value in materialised:
        values: Sequence[object]
        if value is None:
            values = ["-"]
        elif isinstance(value, (list, tuple)):
            values = list(value) or ["-"]
        else:
            values = [value]
        for index, item in enumerate(values):
            head = escape_text(label) if index == 0 else ""
            out.append(f"{indent}{head:<{width}}  {escape_text(str(item))}")
    return "\n".join(out)


def format_message(data: bytes, *, limit: int | None = None) -> str:
    """A received message for the terminal: CRLF lines, control characters escaped.

    Tabs are kept (folded headers use them); every other non-printable character shows
    as its escape, so a message cannot drive the terminal. Invalid UTF-8 shows as U+FFFD.
    With ``limit``, a longer message is cut after the last whole line within ``limit``
    octets and a last line says how many octets were not shown (never silently).
    """
    hidden = 0
    if limit is not None and len(data) > limit:
        cut = data.rfind(b"\r\n", 0, limit) + 2 or limit
        hidden = len(data) - cut
        data = data[:cut]
    text = data.decode("utf-8", "replace")
    lines = text.split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = "\n".join("\t".join(escape_text(part) for part in line.split("\t")) for line in lines)
    if hidden:
        out += f"\n[... {hidden} more octets not shown ...]"
    return out
