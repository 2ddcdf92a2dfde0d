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

import threading
import time  # noqa: TID251 -- CLI adapter layer: transcript stamps and progress rates
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TextIO

from ..wire.text import escape_text

__all__ = [
    "PROGRESS_INTERVAL",
    "PROGRESS_MIN_BYTES",
    "ProgressBar",
    "Transcript",
    "format_message",
    "format_size",
    "format_table",
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
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "",
        tls_info: Callable[[], str | None] | None = None,
    ) -> None:
        self._stream: TextIO | None = stream
        self._clock = clock
        self._start = clock()
        self._prefix = prefix
        self._lock = threading.Lock()
        self._tls_info = tls_info
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

    def _emit(self, mark: str, text: str) -> None:
        stamp = f"[{self.elapsed():8.3f}s]"
        with self._lock:
            if self._stream is None:
                return
            try:
                self._stream.write(f"{self._prefix}{stamp} {mark} {text}\n")
                self._stream.flush()
            except OSError:  # the reader went away (| head): the session goes on
                self._stream = None

    def __call__(self, direction: Literal["C", "S"], line: bytes) -> None:
        """Print one line; ``direction`` is ``"C"`` (we sent it) or ``"S"`` (received).

        Bytes that are not UTF-8 show as U+FFFD; control characters show escaped.
        """
        self._check_tls()
        text = escape_text(line.decode("utf-8", "replace"))
        self._emit(_ARROWS[(direction, self.tls)], text)

    def note(self, text: str) -> None:
        """Print an event that is not a protocol line (connected, TLS started, ...)."""
        self._emit("==", escape_text(text))


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
    ) -> None:
        self.total = total
        self.active = enabled and total >= PROGRESS_MIN_BYTES
        self._stream = stream
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
        # "\r" returns to the start of the line; "\x1b[K" clears what a longer line left.
        self._stream.write("\r" + self.render(done, now - self._start) + "\x1b[K")
        self._stream.flush()

    def finish(self) -> None:
        """Draw the final state and end the line (only if the bar was ever active)."""
        if not self.active or self._finished:
            return
        self._finished = True
        self._draw(self.total, self._clock())
        self._stream.write("\n")
        self._stream.flush()


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
