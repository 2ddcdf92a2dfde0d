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
"e" of a one-letter password would otherwise shred every reply; nor is their base64,
which carries no more than they do: ``PQ==`` (password ``=``) ends the base64 of every
SCRAM-SHA-256 server-final message, and redacting it broke that 334 before it was
decoded; ``LA==`` (``,``) ends one SCRAM salt in 256.

A server may echo a secret inside a longer base64 value (the whole PLAIN response, a
"you sent: ..." challenge), where its base64 depends on its offset: the three
alignments' *cores* (``base64_cores``, the characters that encode the secret alone)
are hunted too, and a core found is widened to the whole base64 word around it. The
lines of a multiline reply are searched as one text as well, so a secret or a base64
value split over lines (``535-AGFsaWNl`` / ``535 AHMzY3Jl...``) is removed from each.

Letter case: a server may echo the password in another case ("Secret123" shown as
``SECRET123`` or ``secret123``: an upper-cased log line, a case-folding lookup), so the
clear forms are hunted without regard to ASCII case, plus the all-upper and all-lower
forms of a non-ASCII secret (``Pässwort`` as ``PÄSSWORT``). The base64 forms are
matched exactly: base64 letters are data (``QQ==`` is "A", ``qq==`` is not the same
octets), so another case is no longer the secret, and folding case would make every
8-character core match 2^8 times as many strings, redacting innocent base64 (SCRAM
nonces, salts).
"""

from __future__ import annotations

import base64
import bisect
import itertools
import re
from collections.abc import Iterable, Sequence

from ..wire.reply import Reply

__all__ = ["MIN_REDACTED_SECRET", "NO_SECRETS", "REDACTED", "NoSecrets", "Redactor"]

#: Secrets shorter than this are redacted only where the engine replaces whole lines.
MIN_REDACTED_SECRET = 4


#: A base64 core shorter than this (6 octets of secret) is not hunted: it could be chance.
MIN_BASE64_CORE = 8
#: The base64 alphabet: a match of a core is widened to the whole base64 word around it
#: (its padding only to the right).
_BASE64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_BASE64_TAIL = _BASE64_ALPHABET | {ord("=")}


def base64_cores(secret: bytes) -> list[bytes]:
    """The base64 text that encodes ``secret`` wherever it sits in a longer encoded
    value: for each of the three alignments, the characters that depend on ``secret``
    alone (RFC 4648 §4: three octets make four characters), when long enough."""
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + secret)
        core = encoded[4 if offset else 0 : 4 * ((offset + len(secret)) // 3)]
        if len(core) >= MIN_BASE64_CORE:
            cores.append(core)
    return cores


def _alternation(clear: Iterable[bytes], exact: Iterable[bytes]) -> re.Pattern[bytes] | None:
    """One alternation of the ``clear`` forms (any ASCII case) and the ``exact`` ones
    (base64: case is data), longest first (None when there is none)."""
    forms = {form: b"(?i:" + re.escape(form) + b")" for form in clear}
    for form in exact:
        forms.setdefault(form, re.escape(form))
    ordered = sorted(forms, key=len, reverse=True)
    return re.compile(b"|".join(forms[form] for form in ordered)) if ordered else None


def _case_forms(secret: bytes) -> list[bytes]:
    """``secret`` and, when it is non-ASCII UTF-8, its all-upper and all-lower forms
    (ASCII letters are matched in any case by the pattern itself)."""
    if secret.isascii():
        return [secret]
    try:
        text = secret.decode("utf-8")
    except UnicodeDecodeError:
        return [secret]
    return [secret, text.upper().encode("utf-8"), text.lower().encode("utf-8")]


def _forms(secrets: Iterable[bytes]) -> list[bytes]:
    """``secrets`` and their ``repr`` escapes (a message quoting server bytes shows
    them so), each as long as ``MIN_REDACTED_SECRET`` or more."""
    forms = [form for secret in secrets for form in (secret, repr(secret)[2:-1].encode("ascii"))]
    return [form for form in forms if len(form) >= MIN_REDACTED_SECRET]


#: The cores of no secret (``frozenset()`` makes a new 216-octet object on each call).
_NO_CORES: frozenset[bytes] = frozenset()

#: What a secret becomes.
REDACTED = b"<redacted>"


class Redactor:
    """The secrets of one connection, and their removal from server text."""

    __slots__ = ("_cores", "_exact", "_pattern", "_secrets", "active")

    def __init__(self) -> None:
        #: True once a secret worth hunting for is known (``_pattern`` is set): a plain
        #: attribute, read once per chunk of replies (``ClientConnection.next_event``).
        self.active = False
        self._secrets: tuple[bytes, ...] = ()
        self._cores: frozenset[bytes] = _NO_CORES
        #: Every form, the clear ones in any case: what ``redact``/``reply``/``error`` hide.
        self._pattern: re.Pattern[bytes] | None = None
        #: Every form exactly as sent: what ``contains_secret`` looks for by default.
        self._exact: re.Pattern[bytes] | None = None

    def add_secrets(self, secrets: Iterable[bytes]) -> None:
        """Redact ``secrets`` (in any letter case, see the module docstring) and their
        base64 forms (exactly, at any alignment) from now on."""
        found = tuple(secret for secret in secrets if len(secret) >= MIN_REDACTED_SECRET)
        self._secrets = tuple(dict.fromkeys(self._secrets + found))
        encoded = [base64.b64encode(secret) for secret in self._secrets]
        self._cores = frozenset(
            core for form in (*self._secrets, *encoded) for core in base64_cores(form)
        )
        clear = [form for secret in self._secrets for form in _case_forms(secret)]
        self._pattern = _alternation(_forms(clear), [*encoded, *self._cores])
        self.active = self._pattern is not None
        self._exact = _alternation((), [*_forms(self._secrets), *encoded, *self._cores])

    def _spans(self, data: bytes, ends: Sequence[int] = ()) -> list[tuple[int, int]]:
        """Where ``data`` holds a secret: each match, and a base64 core widened to the
        whole base64 word around it (the rest of that word encodes the secret too),
        never past a line end (``ends``: where each line of ``data`` but the last ends)."""
        pattern = self._pattern
        if pattern is None:
            return []
        spans: list[tuple[int, int]] = []
        for match in pattern.finditer(data):
            start, end = match.span()
            if match.group() in self._cores:
                before = bisect.bisect_right(ends, start)
                first = ends[before - 1] if before else 0
                after = bisect.bisect_left(ends, end)
                last = ends[after] if after < len(ends) else len(data)
                while start > first and data[start - 1] in _BASE64_ALPHABET:
                    start -= 1
                while end < last and data[end] in _BASE64_TAIL:
                    end += 1
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
        return spans

    def redact(self, data: bytes) -> bytes:
        """``data`` with every known secret replaced by ``<redacted>``."""
        return _replace(data, self._spans(data))

    def contains_secret(self, data: bytes, *, any_case: bool = False) -> bool:
        """True when ``data`` (a decoded challenge) holds a known secret: a server
        echoing it is hostile. Only secrets long enough to hunt count (module
        docstring): refusing a salt that ends in ``LA==`` failed a good login. The
        secret is matched as sent unless ``any_case``: cancelling AUTH LOGIN because
        the password "password" is in its "Password:" prompt would fail a good login,
        so only what an event shows is decided in any case."""
        pattern = self._pattern if any_case else self._exact
        return pattern is not None and pattern.search(data) is not None

    def reply(self, reply: Reply) -> Reply:
        """``reply`` with every secret removed from its lines (the same object when it
        holds none). The lines are also searched as one text, so a secret (or its
        base64) that a server splits over the lines of a multiline reply goes too."""
        lines = reply.raw_lines
        joined = lines[0] if len(lines) == 1 else b"".join(lines)
        if self._pattern is None or self._pattern.search(joined) is None:
            return reply
        spans = self._spans(joined, list(itertools.accumulate(map(len, lines[:-1]))))
        redacted, offset = [], 0
        for line in lines:
            stop = offset + len(line)
            inside = [
                (max(start, offset) - offset, min(end, stop) - offset)
                for start, end in spans
                if start < stop and end > offset
            ]
            redacted.append(_replace(line, inside))
            offset = stop
        return Reply(reply.code, tuple(redacted))

    def error(self, error: BaseException) -> None:
        """Remove every known secret from ``error``'s string args (the message a
        ``ProtocolError`` shows); in place, so the traceback is kept."""
        if self._pattern is None or not any(isinstance(arg, str) for arg in error.args):
            return
        error.args = tuple(self._text(arg) if isinstance(arg, str) else arg for arg in error.args)

    def _text(self, text: str) -> str:
        """``text`` without secrets, searched as UTF-8 (a message quoting server bytes
        shows their ``repr`` escapes, which are hunted too)."""
        encoded = text.encode("utf-8", "surrogateescape")
        spans = self._spans(encoded)
        return _replace(encoded, spans).decode("utf-8", "surrogateescape") if spans else text


class NoSecrets:
    """The redactor of a connection that has sent no AUTH: it knows no secret, so it
    removes nothing. It holds no state and every such connection shares one
    (``NO_SECRETS``); having no ``add_secrets``, it can never be given a secret.
    ``Session.learn_secrets`` puts a ``Redactor`` of the connection's own in its place
    when AUTH is sent, so an idle connection costs no redactor (issue 14)."""

    __slots__ = ()

    #: Always False: no secret is known (read-only: the class has no instance slots).
    active = False

    def redact(self, data: bytes) -> bytes:
        """``data`` unchanged."""
        return data

    def contains_secret(self, data: bytes, *, any_case: bool = False) -> bool:
        """Always False."""
        return False

    def reply(self, reply: Reply) -> Reply:
        """``reply`` itself."""
        return reply

    def error(self, error: BaseException) -> None:
        """Nothing to remove."""


#: The one ``NoSecrets``.
NO_SECRETS = NoSecrets()


def _replace(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """``data`` with each (sorted, disjoint) span replaced by ``<redacted>``."""
    if not spans:
        return data
    pieces, last = [], 0
    for start, end in spans:
        pieces += [data[last:start], REDACTED]
        last = end
    pieces.append(data[last:])
    return b"".join(pieces)
