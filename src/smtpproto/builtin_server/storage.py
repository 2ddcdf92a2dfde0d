"""Where the built-in server puts messages: memory, a maildir, an mbox.

Adapter layer (file I/O allowed; no sockets are opened, no event loop is used).
``MessageStore.store`` keeps each message in ``messages`` and, when configured, writes it
to a maildir (the content exactly as received, via ``tmp/`` then a rename into ``new/``)
and appends it to an mbox (mboxrd: LF line ends, ``>From`` quoting). It returns the
queue id the server names in its ``250 ... queued as`` reply and raises ``OSError`` when a
file cannot be written.
"""

from __future__ import annotations

import os
import socket  # noqa: TID251  (adapter layer: only gethostname, for maildir file names)
import time  # noqa: TID251  (adapter layer: queue ids and mbox time stamps)
from pathlib import Path
from typing import NamedTuple

__all__ = ["MessageStore", "StoredMessage", "mbox_entry"]


class StoredMessage(NamedTuple):
    """One received message: envelope sender (``""`` for ``<>``), recipients, content."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


class MessageStore:
    """Messages kept in ``messages`` and, optionally, in a maildir and/or an mbox file."""

    def __init__(
        self,
        maildir: str | os.PathLike[str] | None = None,
        mbox: str | os.PathLike[str] | None = None,
    ) -> None:
        self.maildir = None if maildir is None else Path(maildir)
        self.mbox = None if mbox is None else Path(mbox)
        self.messages: list[StoredMessage] = []
        self._counter = 0

    def store(self, message: StoredMessage) -> str:
        """Write ``message`` to the maildir and mbox (if set), then keep it in
        ``messages``; return its queue id. ``OSError`` when a file cannot be written
        (the message is then not in ``messages``)."""
        self._counter += 1
        queue_id = f"{int(time.time())}.{os.getpid()}.{self._counter}"
        if self.maildir is not None:
            for sub in ("tmp", "new", "cur"):
                (self.maildir / sub).mkdir(parents=True, exist_ok=True)
            name = f"{queue_id}.{socket.gethostname().replace('/', '_')}"
            temporary = self.maildir / "tmp" / name
            temporary.write_bytes(message.data)
            temporary.rename(self.maildir / "new" / name)
        if self.mbox is not None:
            with self.mbox.open("ab") as mbox:
                mbox.write(mbox_entry(message))
        self.messages.append(message)
        return queue_id


def mbox_entry(message: StoredMessage) -> bytes:
    """mboxrd: a ``From `` line, LF line ends, ``>`` added before ``>*From `` lines."""
    sender = (message.sender or "MAILER-DAEMON").encode("utf-8", "replace")
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime()).encode()
    lines = message.data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    quoted = [b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in lines]
    return b"From " + sender + b" " + stamp + b"\n" + b"\n".join(quoted) + b"\n\n"
