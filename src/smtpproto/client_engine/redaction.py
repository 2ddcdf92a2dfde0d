"""``Redactor``: the AUTH secrets of one client connection, removed from server text.

The connection learns the mechanism's ``secrets`` (and their base64 forms) when it
sends AUTH (``sending``); from then on, for the rest of the connection, the redactor
removes them from whatever carries server text (docs/design.md §4 rule 11): every
``Reply`` the connection parses (``reply``, before any event is built from it, so
``SMTPReplyError``'s text, args and ``reply``, the CLI's output and the transcript all
show ``<redacted>`` for a server that echoes the password in its 535), the message of
any ``ProtocolError`` leaving the connection (``error``), and every transcript line
(``Transcript``). One pass, longest secret first, so a replacement is never rescanned.
Secrets shorter than ``MIN_REDACTED_SECRET`` octets are not hunted for, because every
"e" of a one-letter password would otherwise shred every reply.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

from ..wire.reply import Reply

__all__ = ["MIN_REDACTED_SECRET", "REDACTED", "Redactor"]

#: Secrets shorter than this are redacted only where the engine replaces whole lines.
MIN_REDACTED_SECRET = 4


def _secret_pattern(secrets: tuple[bytes, ...]) -> re.Pattern[bytes] | None:
    """One alternation of the secrets worth hunting for, longest first."""
    hunted = sorted((s for s in secrets if len(s) >= MIN_REDACTED_SECRET), key=len, reverse=True)
    if not hunted:
        return None
    return re.compile(b"|".join(re.escape(secret) for secret in hunted))


#: What a secret becomes.
REDACTED = b"<redacted>"


class Redactor:
    """The secrets of one connection, and their removal from server text."""

    __slots__ = ("_pattern", "_secrets", "_text_pattern")

    def __init__(self) -> None:
        self._secrets: tuple[bytes, ...] = ()
        self._pattern: re.Pattern[bytes] | None = None
        self._text_pattern: re.Pattern[str] | None = None

    @property
    def active(self) -> bool:
        """True once a secret worth hunting for is known."""
        return self._pattern is not None

    def add_secrets(self, secrets: Iterable[bytes]) -> None:
        """Redact ``secrets`` (and their base64 forms) from now on."""
        found = [secret for secret in secrets if secret]
        found += [base64.b64encode(secret) for secret in found]
        self._secrets = tuple(dict.fromkeys(self._secrets + tuple(found)))
        self._pattern = _secret_pattern(self._secrets)
        texts = [
            form
            for secret in self._secrets
            for form in (secret.decode("utf-8", "replace"), repr(secret)[2:-1])
            if len(form) >= MIN_REDACTED_SECRET
        ]
        self._text_pattern = (
            re.compile("|".join(map(re.escape, sorted(set(texts), key=len, reverse=True))))
            if texts
            else None
        )

    def redact(self, data: bytes) -> bytes:
        """``data`` with every known secret replaced by ``<redacted>``."""
        pattern = self._pattern
        return data if pattern is None else pattern.sub(REDACTED, data)

    def contains_secret(self, data: bytes) -> bool:
        """True when ``data`` holds a known secret (a server echoing it is hostile)."""
        pattern = self._pattern
        return pattern is not None and pattern.search(data) is not None

    def reply(self, reply: Reply) -> Reply:
        """``reply`` with every secret removed from its lines (the same object when it
        holds none)."""
        pattern = self._pattern
        if pattern is None or not any(pattern.search(line) for line in reply.raw_lines):
            return reply
        return Reply(reply.code, tuple(pattern.sub(REDACTED, line) for line in reply.raw_lines))

    def error(self, error: BaseException) -> None:
        """Remove every known secret, in its text forms, from ``error``'s string args
        (the message a ``ProtocolError`` shows); in place, so the traceback is kept."""
        pattern = self._text_pattern
        if pattern is None or not any(isinstance(arg, str) for arg in error.args):
            return
        error.args = tuple(
            pattern.sub("<redacted>", arg) if isinstance(arg, str) else arg for arg in error.args
        )
