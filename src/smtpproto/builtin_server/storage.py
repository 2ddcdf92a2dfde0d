"""Where the built-in server puts messages: memory, a maildir, an mbox.

Adapter layer (file I/O allowed; no sockets are opened, no event loop is used).
``MessageStore.store`` keeps each message in ``messages`` (unless ``keep=False``: a
long-running ``smtpproto serve`` must not grow with every message it received) and, when
configured, writes it to a maildir and appends it to an mbox (mboxrd: LF line ends,
``>From`` quoting). It returns the queue id the server names in its ``250 ... queued
as`` reply and raises ``OSError`` when a file cannot be written.

Maildir delivery follows D. J. Bernstein's maildir(5) protocol: the content, exactly as
received (no header is added: no ``Received:``, no ``Return-Path:``), is written to a new
file in ``tmp/`` (created with ``O_EXCL``, so an existing file is never overwritten) and
then renamed into ``new/``, so a reader never sees a partial message: a file is in
``new/`` only complete, and a failed write leaves nothing behind. The name is unique on
the host: ``SECONDS.MusecPpidQn.HOST``, with the process id (read again in a forked child)
and a per-process delivery count, the form maildir(5) recommends; making it costs no
system call. A message costs four: ``open``, one ``write`` (more only after a short
write), ``close``, ``rename``. ``tmp/``, ``new/`` and ``cur/`` are created once per
maildir, and again if they vanish.

Durability: files are not fsynced (neither the file nor the folders). This is a server
for tests and development: a crash of the machine (not of the process: the kernel has
the data) may lose the last messages it acknowledged with 250. An fsync per message
would cost a disk flush for every 250 (RFC 5321 §6.1 asks that of a real MTA, which
this is not).

``prepare`` checks, before a server starts, that the maildir and mbox take a message
(``StorageError`` names the path and the reason), so that ``smtpproto serve`` refuses an
unusable path at startup instead of answering 451 to every message.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket  # noqa: TID251  (adapter layer: only gethostname, for maildir file names)
import time  # noqa: TID251  (adapter layer: queue ids and mbox time stamps)
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..wire.fields import check_flag

__all__ = ["MessageStore", "StorageError", "StoredMessage", "mbox_entry"]


class StoredMessage(NamedTuple):
    """One received message: envelope sender (``""`` for ``<>``), recipients, content."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


class _Process:
    """This process's id and delivery counter for unique names; a forked child (the
    workers of ``smtpproto serve --workers``) starts its own."""

    pid = os.getpid()
    deliveries = itertools.count(1)

    @classmethod
    def after_fork(cls) -> None:
        cls.pid = os.getpid()
        cls.deliveries = itertools.count(1)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_Process.after_fork)

#: maildir(5): "/" and ":" in the host name become octal escapes.
_HOST_ESCAPES = str.maketrans({"/": "\\057", ":": "\\072"})
_MAILDIR_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _write_new_file(path: str, data: bytes) -> None:
    """``data`` into a file that must not exist yet; no partial file is left behind."""
    fd = os.open(path, _MAILDIR_FILE_FLAGS, 0o666)
    try:
        written = os.write(fd, data)  # one write: the whole message, nearly always
        if written < len(data):
            _write_rest(fd, memoryview(data)[written:])
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def _write_rest(fd: int, view: memoryview) -> None:
    """What a short write left: ``os.write`` until all of ``view`` is written."""
    while view:
        view = view[os.write(fd, view) :]


def _append(path: Path, entry: bytes) -> None:
    """``entry`` at the end of ``path`` in one ``O_APPEND`` write (a short write is
    finished at once), so processes appending to one mbox do not interleave entries."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o666)
    try:
        _write_rest(fd, memoryview(entry))
    finally:
        os.close(fd)


class StorageError(OSError):
    """A maildir or mbox that cannot take a message (``MessageStore.prepare``): the
    message names the path and the reason."""


class MessageStore:
    """Messages kept in ``messages`` (unless ``keep`` is False) and, optionally, in a
    maildir and/or an mbox file."""

    def __init__(
        self,
        maildir: str | os.PathLike[str] | None = None,
        mbox: str | os.PathLike[str] | None = None,
        *,
        keep: bool = True,
    ) -> None:
        check_flag("keep", keep)
        #: Whether ``store`` keeps each message in ``messages`` (memory grows with each).
        self.keep = keep
        self.maildir = None if maildir is None else Path(maildir)
        self.mbox = None if mbox is None else Path(mbox)
        self.messages: list[StoredMessage] = []
        #: The maildir whose sub-folders exist, and its ``tmp/`` and ``new/`` paths.
        self._ready: tuple[Path, str, str] | None = None
        self._host = socket.gethostname().translate(_HOST_ESCAPES)

    def require_kept(self) -> None:
        """``ValueError`` unless messages are kept (what waiting for them needs)."""
        if not self.keep:
            raise ValueError("this server keeps no messages (keep_messages=False)")

    def prepare(self) -> None:
        """Make the maildir's folders and prove that both destinations take a message;
        ``StorageError`` otherwise (a path that is a file, a missing parent folder, a
        folder or file this process cannot write). Nothing a mail reader would show is
        left behind: the maildir probe is a dot file (maildir(5) readers skip those)
        moved from ``tmp/`` to ``new/`` and removed; the mbox is created empty if it is
        missing (an empty mbox holds no message)."""
        if self.maildir is not None:
            self._check(self.maildir, "maildir", self._probe_maildir)
        if self.mbox is not None:
            self._check(self.mbox, "mbox", _probe_mbox)

    @staticmethod
    def _check(path: Path, what: str, probe: Callable[[Path], None]) -> None:
        if not path.parent.is_dir():
            raise StorageError(errno.ENOENT, f"{what} {path}: its parent folder does not exist")
        try:
            probe(path)
        except OSError as error:
            reason = error.strerror or str(error)
            culprit = error.filename2 or error.filename  # a rename: where it went
            if culprit is not None and os.path.basename(culprit).startswith(_PROBE):
                culprit = os.path.dirname(culprit)  # the folder, not the probe file
            where = "" if culprit in (None, str(path)) else f" ({culprit})"
            raise StorageError(error.errno, f"{what} {path}: {reason}{where}") from None

    def _probe_maildir(self, maildir: Path) -> None:
        if maildir.exists() and not maildir.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(maildir))
        maildir.mkdir(exist_ok=True)
        for sub in ("tmp", "new", "cur"):
            folder = maildir / sub
            if folder.exists() and not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
        _, tmp, new = self._make_folders(maildir)
        name = f"{_PROBE}.{_Process.pid}.{next(_Process.deliveries)}.{self._host}"
        _write_new_file(tmp + name, b"")
        try:
            os.rename(tmp + name, new + name)
        except BaseException:
            os.unlink(tmp + name)
            raise
        os.unlink(new + name)
        if not os.access(maildir / "cur", os.W_OK | os.X_OK):  # where readers move mail
            raise PermissionError(errno.EACCES, "Permission denied", str(maildir / "cur"))

    def store(self, message: StoredMessage) -> str:
        """Write ``message`` to the maildir and mbox (if set), then keep it in
        ``messages`` (if ``keep``); return its queue id. ``OSError`` when a file cannot be written
        (the message is then not in ``messages``)."""
        seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
        queue_id = f"{seconds}.M{nanoseconds // 1000}P{_Process.pid}Q{next(_Process.deliveries)}"
        if self.maildir is not None:
            self._deliver_to_maildir(self.maildir, f"{queue_id}.{self._host}", message.data)
        if self.mbox is not None:
            _append(self.mbox, mbox_entry(message))
        if self.keep:
            self.messages.append(message)
        return queue_id

    def _deliver_to_maildir(self, maildir: Path, name: str, data: bytes) -> None:
        """maildir(5): write ``tmp/NAME``, then rename it to ``new/NAME``."""
        ready = self._ready
        if ready is None or ready[0] is not maildir:
            ready = self._make_folders(maildir)
        tmp, new = ready[1] + name, ready[2] + name
        try:
            _write_new_file(tmp, data)
        except FileNotFoundError:  # the folders were removed meanwhile
            ready = self._make_folders(maildir)
            _write_new_file(tmp, data)
        try:
            os.rename(tmp, new)
        except BaseException:
            os.unlink(tmp)
            raise

    def _make_folders(self, maildir: Path) -> tuple[Path, str, str]:
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        self._ready = (maildir, os.path.join(maildir, "tmp", ""), os.path.join(maildir, "new", ""))
        return self._ready


#: The maildir probe's name starts with a dot: maildir(5) readers skip such files.
_PROBE = ".smtpproto-probe"


def _probe_mbox(path: Path) -> None:
    """The mbox can be opened for appending (created empty if it is missing)."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
    _append(path, b"")


def mbox_entry(message: StoredMessage) -> bytes:
    """mboxrd: a ``From `` line, LF line ends, ``>`` added before ``>*From `` lines."""
    sender = (message.sender or "MAILER-DAEMON").encode("utf-8", "replace")
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime()).encode()
    lines = message.data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    quoted = [b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in lines]
    return b"From " + sender + b" " + stamp + b"\n" + b"\n".join(quoted) + b"\n\n"
