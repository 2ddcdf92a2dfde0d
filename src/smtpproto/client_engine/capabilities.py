"""``Capabilities``: the service extensions a server advertised in its EHLO reply.

Theory of operation: ``Capabilities.from_ehlo`` reads the reply's raw lines once. The
first line is the server's domain and greeting (RFC 5321 §4.1.1.1 ``ehlo-ok-rsp``), never
a capability. Every other line must be an ``ehlo-line``; lines that are not are kept in
``ignored_lines`` and otherwise ignored, so a sloppy server never makes parsing fail.
Keywords are stored upper-case and matched exactly; their parameters are kept verbatim.
The typed properties (``size``, ``auth_mechanisms``, ``pipelining``, ...) are all derived
from that one mapping, so ``masked()`` — which drops keywords from it — is reflected by
every property without further bookkeeping. Nothing here raises on server data.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Mapping

from ..sasl.base import MECH_NAME
from ..wire.errors import LocalProtocolError
from ..wire.reply import Reply

__all__ = [
    "EHLO_CACHE_MAX_LINES",
    "EHLO_CACHE_MAX_OCTETS",
    "EHLO_CACHE_SIZE",
    "Capabilities",
    "ParsedEhlo",
    "ServerLimits",
    "parse_ehlo",
]

# RFC 5321 §4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param )
#   ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
#   ehlo-param = 1*(%d33-126)
_EHLO_KEYWORD = re.compile(rb"[A-Za-z0-9][A-Za-z0-9-]*")
_EHLO_PARAM = re.compile(rb"[\x21-\x7e]+")
# The pre-RFC 2554 form some servers still send next to the standard one:
# "AUTH=LOGIN PLAIN" (keyword and first mechanism joined by "=").
_OLD_AUTH = re.compile(rb"AUTH=", re.IGNORECASE)
# Numbers we accept from a server: plain digits, short enough to convert cheaply.
_NUMBER = re.compile(r"[0-9]{1,19}")
_MAX_SIZE = 2**63 - 1


def _positive(text: str, *, maximum: int = _MAX_SIZE) -> int | None:
    """``text`` as an int in 1..maximum, else ``None`` (garbage never raises)."""
    if _NUMBER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if 0 < value <= maximum else None


@dataclasses.dataclass(frozen=True, slots=True)
class ServerLimits:
    """The RFC 9422 LIMITS a server announced; ``None`` where none (or a bad one) was.

    ``rcptmax``: most RCPT commands per transaction; ``mailmax``: most transactions per
    session; ``rcptdomainmax``: most distinct recipient domains per transaction.
    """

    rcptmax: int | None = None
    mailmax: int | None = None
    rcptdomainmax: int | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What the server offered in its EHLO reply (RFC 5321 §4.1.1.1).

    ``server_name`` and ``greeting`` come from the first line. ``keywords`` maps each
    upper-case keyword to its parameters (a read-only mapping; a keyword advertised
    twice has its parameters merged). ``ignored_lines`` are the lines that were not
    valid ehlo-lines, decoded for display. ``masked_keywords`` are the keywords the
    caller removed with ``masked()``.
    """

    server_name: str = ""
    greeting: str = ""
    keywords: Mapping[str, tuple[str, ...]] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )
    ignored_lines: tuple[str, ...] = ()
    masked_keywords: frozenset[str] = frozenset()

    def __hash__(self) -> int:
        return hash((self.server_name, self.greeting, tuple(sorted(self.keywords.items()))))

    # -- construction ------------------------------------------------------------------

    @classmethod
    def none(cls, server_name: str = "") -> Capabilities:
        """No extensions: the session began with HELO, or EHLO was refused."""
        return cls(server_name=server_name)

    @classmethod
    def from_ehlo(cls, reply: Reply) -> Capabilities:
        """Parse a 250 EHLO (or LHLO) reply.

        Raises ``LocalProtocolError`` when ``reply`` is not a 250 reply (the caller passed
        the wrong reply); never raises on the content of a 250 reply.
        """
        if reply.code != 250:
            raise LocalProtocolError(f"an EHLO reply with code 250 is needed, got {reply.code}")
        first, *rest = reply.raw_lines
        name, _, greeting = first.partition(b" ")
        keywords: dict[str, list[str]] = {}
        ignored: list[str] = []
        for raw in rest:
            parsed = _parse_ehlo_line(raw)
            if parsed is None:
                ignored.append(raw.decode("utf-8", "replace"))
                continue
            keyword, params = parsed
            merged = keywords.setdefault(keyword, [])
            merged.extend(param for param in params if param not in merged)
        return cls(
            server_name=name.decode("utf-8", "replace"),
            greeting=greeting.decode("utf-8", "replace"),
            keywords=types.MappingProxyType(
                {keyword: tuple(params) for keyword, params in keywords.items()}
            ),
            ignored_lines=tuple(ignored),
        )

    def masked(self, *keywords: str) -> Capabilities:
        """A copy without ``keywords`` (case-insensitive), as if never advertised.

        For "do not use CHUNKING with this server"; every property reflects the mask.
        Masking a keyword that was not advertised is allowed and has no effect.
        """
        drop = frozenset(keyword.upper() for keyword in keywords)
        kept = {key: value for key, value in self.keywords.items() if key not in drop}
        return dataclasses.replace(
            self,
            keywords=types.MappingProxyType(kept),
            masked_keywords=self.masked_keywords | drop,
        )

    # -- generic access ----------------------------------------------------------------

    def has(self, keyword: str) -> bool:
        """Whether ``keyword`` was advertised (exact, case-insensitive match)."""
        return keyword.upper() in self.keywords

    def params(self, keyword: str) -> tuple[str, ...]:
        """The parameters advertised with ``keyword``; ``()`` when absent or bare."""
        return self.keywords.get(keyword.upper(), ())

    def _first_param(self, keyword: str) -> str | None:
        params = self.keywords.get(keyword)
        if params is None:
            return None
        return params[0] if params else ""

    # -- typed views -------------------------------------------------------------------

    @property
    def size(self) -> int | None:
        """The SIZE limit in octets (RFC 1870 §4), or ``None`` for no usable limit.

        ``None`` when SIZE is absent, bare, ``0`` ("no fixed maximum", RFC 1870 §4), or
        not a plain number up to 2**63-1; use ``has("SIZE")`` to tell those apart.
        """
        value = self._first_param("SIZE")
        return None if value is None else _positive(value)

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        """SASL mechanisms from ``AUTH`` and the old ``AUTH=`` form (RFC 4954 §3).

        Upper-cased; names that are not RFC 4422 §3.1 ``sasl-mech`` are dropped.
        """
        return frozenset(
            name
            for name in (param.upper() for param in self.params("AUTH"))
            if MECH_NAME.fullmatch(name)  # RFC 4422 §3.1 sasl-mech
        )

    @property
    def pipelining(self) -> bool:
        """PIPELINING (RFC 2920)."""
        return "PIPELINING" in self.keywords

    @property
    def chunking(self) -> bool:
        """CHUNKING: the BDAT command (RFC 3030)."""
        return "CHUNKING" in self.keywords

    @property
    def binarymime(self) -> bool:
        """BINARYMIME: BODY=BINARYMIME, only with BDAT (RFC 3030 §3)."""
        return "BINARYMIME" in self.keywords

    @property
    def eightbitmime(self) -> bool:
        """8BITMIME: BODY=8BITMIME (RFC 6152)."""
        return "8BITMIME" in self.keywords

    @property
    def smtputf8(self) -> bool:
        """SMTPUTF8: UTF-8 addresses and headers (RFC 6531)."""
        return "SMTPUTF8" in self.keywords

    @property
    def dsn(self) -> bool:
        """DSN: NOTIFY, ORCPT, RET, ENVID parameters (RFC 3461)."""
        return "DSN" in self.keywords

    @property
    def enhanced_status_codes(self) -> bool:
        """ENHANCEDSTATUSCODES (RFC 2034)."""
        return "ENHANCEDSTATUSCODES" in self.keywords

    @property
    def starttls(self) -> bool:
        """STARTTLS (RFC 3207)."""
        return "STARTTLS" in self.keywords

    @property
    def requiretls(self) -> bool:
        """REQUIRETLS (RFC 8689)."""
        return "REQUIRETLS" in self.keywords

    @property
    def deliverby(self) -> int | None:
        """DELIVERBY's min-by-time in seconds (RFC 2852 §4).

        ``None`` when DELIVERBY is absent; ``0`` when advertised without a (usable)
        minimum — min-by-time is at most 9 digits and positive.
        """
        value = self._first_param("DELIVERBY")
        if value is None:
            return None
        return _positive(value, maximum=999_999_999) or 0

    @property
    def mt_priority(self) -> str | None:
        """MT-PRIORITY's priority assignment policy name (RFC 6710 §3), upper-cased.

        ``None`` when absent; ``""`` when advertised without a policy name.
        """
        value = self._first_param("MT-PRIORITY")
        return None if value is None else value.upper()

    @property
    def limits(self) -> ServerLimits:
        """LIMITS RCPTMAX / MAILMAX / RCPTDOMAINMAX (RFC 9422 §4).

        Names match case-insensitively; a value that is not a positive integer of at
        most 9 digits, or a name given twice, leaves that limit ``None``.
        """
        found: dict[str, int | None] = {}
        for param in self.params("LIMITS"):
            name, equals, value = param.partition("=")
            name = name.upper()
            if not equals or name not in ("RCPTMAX", "MAILMAX", "RCPTDOMAINMAX"):
                continue
            found[name] = None if name in found else _positive(value, maximum=999_999_999)
        return ServerLimits(
            rcptmax=found.get("RCPTMAX"),
            mailmax=found.get("MAILMAX"),
            rcptdomainmax=found.get("RCPTDOMAINMAX"),
        )


def _parse_ehlo_line(raw: bytes) -> tuple[str, tuple[str, ...]] | None:
    """An ehlo-line as (upper-case keyword, params), or ``None`` when it is not one.

    Parameters are separated by one or more spaces (servers vary); anything outside
    %d33-126 makes the line invalid. ``AUTH=A B`` becomes ``("AUTH", ("A", "B"))``.
    """
    if _OLD_AUTH.match(raw):
        raw = b"AUTH " + raw[5:]
    keyword, *params = raw.split(b" ")
    if _EHLO_KEYWORD.fullmatch(keyword) is None:
        return None
    kept = [param for param in params if param]
    if any(_EHLO_PARAM.fullmatch(param) is None for param in kept):
        return None
    return keyword.decode("ascii").upper(), tuple(param.decode("ascii") for param in kept)


#: What the engine reads of an EHLO reply on every command: the (masked) capabilities,
#: PIPELINING, LIMITS RCPTMAX, and the reply itself (the first one seen with these lines).
ParsedEhlo = tuple[Capabilities, bool, "int | None", Reply]


#: How many distinct EHLO replies the process remembers (``parse_ehlo``).
EHLO_CACHE_SIZE = 64
#: The largest reply remembered: octets of its lines and number of lines. A larger one
#: is parsed for its connection alone, so the table never holds more than
#: ``EHLO_CACHE_SIZE`` small replies (an EHLO reply is 100-500 octets and 5-20 lines).
EHLO_CACHE_MAX_OCTETS = 2048
EHLO_CACHE_MAX_LINES = 32

#: The intern table of ``parse_ehlo``: (mask, the reply's lines) to what they mean.
#: Process-wide, the one exception to docs/design.md §2's rule against global state: it
#: holds immutable values only, each exactly what a connection would have parsed itself,
#: bounded in entries and in size; a connection keeps no reference to the table.
_EHLO_CACHE: dict[tuple[tuple[str, ...], tuple[bytes, ...]], ParsedEhlo] = {}


def parse_ehlo(mask: tuple[str, ...], reply: Reply) -> ParsedEhlo:
    """``Capabilities.from_ehlo(reply)`` masked with ``mask``, its PIPELINING flag, its
    RCPTMAX (RFC 9422 §4) and ``reply``, parsed once per distinct reply and mask.

    Every connection that gets the same EHLO reply (clients of one server, a pool, each
    reconnect of ``send_many``) shares one set of these immutable values instead of
    holding its own copy (about 2 KB per connection, issue 14): ``Capabilities`` is a
    frozen dataclass whose ``keywords`` is a read-only mapping, and ``Reply`` is
    immutable, so sharing them shares no state. The returned reply equals ``reply``
    (same code, same octets) and may be the first connection's object. At most
    ``EHLO_CACHE_SIZE`` entries, the oldest dropped first; replies over
    ``EHLO_CACHE_MAX_OCTETS`` octets or ``EHLO_CACHE_MAX_LINES`` lines are not kept.
    """
    lines = reply.raw_lines
    key = (mask, lines)
    cached = _EHLO_CACHE.get(key)
    if cached is not None:
        return cached
    caps = Capabilities.from_ehlo(reply)
    if mask:
        caps = caps.masked(*mask)
    parsed = (caps, caps.pipelining, caps.limits.rcptmax, reply)
    if len(lines) <= EHLO_CACHE_MAX_LINES and sum(map(len, lines)) <= EHLO_CACHE_MAX_OCTETS:
        while len(_EHLO_CACHE) >= EHLO_CACHE_SIZE:
            try:  # connections in several threads may evict at once
                del _EHLO_CACHE[next(iter(_EHLO_CACHE))]
            except (KeyError, RuntimeError, StopIteration):
                break
        _EHLO_CACHE[key] = parsed
    return parsed
