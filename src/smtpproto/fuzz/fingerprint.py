"""The fingerprint phase: what the server is and how it behaves when nothing is wrong.

It learns the banner, the EHLO keywords before and after STARTTLS (RFC 3207), the SIZE
limit (RFC 1870), whether PIPELINING (RFC 2920), CHUNKING (RFC 3030) and AUTH (RFC 4954)
are offered and from when, which sender and recipient the server accepts (so probes can
reach DATA), whether it takes MAIL before EHLO or without AUTH, the baseline latency of a
NOOP and the latency of an error reply (tarpitting). The error limit (421 after N errors)
is measured by the crash family's ``error-limit`` probe, which also catches a server that
dies there. Probes build their dialogues with
``Profile.prefix`` and size their waits from these numbers, so legitimate behaviour is
calibrated away instead of being reported.
"""

from __future__ import annotations

import base64
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .observation import ConnResult, Observation, parse
from .transcript import Event, connect, send, starttls

if TYPE_CHECKING:
    from .runner import Runner


__all__ = ["AuthenticationFailed", "Profile", "Settings", "fingerprint"]

#: The states ``Profile.prefix`` reaches on a fresh connection, in order.
STAGES = ("connected", "greeted", "mail", "rcpt", "data")


def _ascii_address(address: str) -> None:
    """The baseline sends no SMTPUTF8 (RFC 6531 §3.4): an ASCII address only."""
    from ..wire.errors import LocalProtocolError

    if not address.isascii():
        raise LocalProtocolError("a non-ASCII address needs SMTPUTF8, which the fuzzer never asks")


@dataclass
class Settings:
    """The user's choices for a campaign (CLI options). They make the baseline dialogue
    (EHLO, AUTH PLAIN, MAIL, RCPT) the probes start from, so each is checked by the
    client engine's own constructors: a CR LF in ``ehlo`` would have sent a command of
    its own (``EHLO x`` CRLF ``VRFY root``) and shifted every reply count. ``ValueError``
    names the field; the password is never shown, nor kept in the repr."""

    tls: str = "none"  # none | starttls | implicit
    ehlo: str = "fuzz.smtpproto.test"
    mail_from: str = "fuzz@example.com"
    rcpt_to: str | None = None
    auth: tuple[str, str] | None = field(default=None, repr=False)  # never in a repr

    def __post_init__(self) -> None:
        from ..client_engine.commands import Ehlo, Mail, Rcpt
        from ..sasl.mechanisms import Plain
        from ..wire.errors import LocalProtocolError

        checks: list[tuple[str, Callable[[], object]]] = [
            ("ehlo", lambda: Ehlo(hostname=self.ehlo)),
            ("mail_from", lambda: Mail(sender=self.mail_from)),
        ]
        if self.rcpt_to is not None:
            checks.append(("rcpt_to", lambda: Rcpt(recipient=self.rcpt_to or "")))
            checks.append(("rcpt_to", lambda: _ascii_address(self.rcpt_to or "")))
        if self.auth is not None:
            user, password = self.auth
            checks.append(("auth", lambda: Plain(user, password)))
        for name, check in checks:
            try:
                check()
            except LocalProtocolError as error:  # SASLError too: never the password
                problem = str(error)
            else:
                continue
            raise ValueError(f"{name}: {problem}")


@dataclass
class Profile:
    """The calibrated facts about the server."""

    settings: Settings
    banner: bytes = b""
    ehlo: bool = True
    keywords: dict[str, str] = field(default_factory=dict)
    keywords_before_tls: dict[str, str] = field(default_factory=dict)
    tls_active: bool = False
    mail_from: str = ""
    rcpt_to: str = ""
    can_reach_data: bool = False
    latency: float = 0.05
    error_latency: float = 0.05
    error_limit: int | None = None
    mail_without_hello_refused: bool = False
    domainless_mail_ok: bool = False
    domainless_rcpt_ok: bool = False
    requires_auth: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.keywords

    @property
    def chunking(self) -> bool:
        return "CHUNKING" in self.keywords

    @property
    def size_limit(self) -> int | None:
        value = self.keywords.get("SIZE", "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    @property
    def auth_mechanisms(self) -> list[str]:
        return self.keywords.get("AUTH", "").upper().split()

    @property
    def wait(self) -> float:
        """How long a probe waits for a reply a correct server gives at once."""
        return max(2.0, 10 * max(self.latency, self.error_latency))

    def hello(self) -> bytes:
        return (b"EHLO " if self.ehlo else b"HELO ") + self.settings.ehlo.encode() + b"\r\n"

    def prefix(self, stage: str) -> list[Event]:
        """The events that reach ``stage`` on a fresh connection (one of ``STAGES``)."""
        events = [connect()]
        if stage == "connected":
            return events
        events.append(send(self.hello(), 1))
        if self.settings.tls == "starttls" and self.tls_active:
            events += [send(b"STARTTLS\r\n", 1), starttls(), send(self.hello(), 1)]
        if self.settings.auth is not None:
            user, password = self.settings.auth
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            events.append(send(f"AUTH PLAIN {token}\r\n".encode(), 1))
        if stage == "greeted":
            return events
        events.append(send(f"MAIL FROM:<{self.mail_from}>\r\n".encode(), 1))
        if stage == "mail":
            return events
        events.append(send(f"RCPT TO:<{self.rcpt_to}>\r\n".encode(), 1))
        if stage == "rcpt":
            return events
        events.append(send(b"DATA\r\n", 1))
        return events

    def to_json(self) -> dict[str, Any]:
        return {
            "banner": self.banner.decode("utf-8", "replace").strip(),
            "ehlo": self.ehlo,
            "keywords": self.keywords,
            "keywords_before_tls": self.keywords_before_tls,
            "tls": self.tls_active,
            "mail_from": self.mail_from,
            "rcpt_to": self.rcpt_to,
            "can_reach_data": self.can_reach_data,
            "latency_s": round(self.latency, 4),
            "error_latency_s": round(self.error_latency, 4),
            "error_limit": self.error_limit,
            "mail_without_hello_refused": self.mail_without_hello_refused,
            "domainless_mail_ok": self.domainless_mail_ok,
            "domainless_rcpt_ok": self.domainless_rcpt_ok,
            "requires_auth": self.requires_auth,
            "notes": self.notes,
        }


def _replies_in(events: list[Event]) -> int:
    """Replies a correct server sends for ``events`` (the banner included)."""
    return 1 + sum(e.expect or 0 for e in events if e.dir == "c2s")


def _keywords(conn: ConnResult, position: int) -> dict[str, str] | None:
    for parsed in parse(conn)[0]:
        if parsed.step == position and parsed.reply.code == 250:
            words: dict[str, str] = {}
            for line in parsed.reply.lines[1:]:
                name, _, value = line.strip().partition(" ")
                if name:
                    words[name.upper()] = value
            return words
    return None


def _codes(conn: ConnResult) -> list[int]:
    return [p.reply.code for p in parse(conn)[0]]


class AuthenticationFailed(ConnectionError):
    """The credentials given to the campaign were refused (RFC 4954 §4: no 235): every
    probe would start from a failed AUTH, and a server requiring it would look clean."""


def _check_auth(conn: ConnResult, profile: Profile) -> None:
    """Raise ``AuthenticationFailed`` when the prefix's AUTH PLAIN (its last write) got
    535, the credentials refused (RFC 4954 §6); the message names the reply, never the
    credentials. Another refusal (538 where STARTTLS failed, 503, ...) is a note: the
    server's own flaw may be why, and the probes that need no AUTH still run."""
    prefix = profile.prefix("greeted")
    at = _replies_in(prefix[:-1])
    replies = parse(conn)[0]
    reply = replies[at].reply if at < len(replies) else None
    if reply is None or reply.code // 100 == 2:
        return  # no reply at all: the server's trouble, for the probes to show
    if reply.code != 535:
        profile.notes.append(f"AUTH refused with {reply.code}: probes start from a failed AUTH")
        return
    if profile.settings.auth is not None:
        # A server may echo the password (or the PLAIN response) in its 535: the client
        # engine's redactor removes it before any of it is shown (§4 rule 11).
        from ..client_engine.redaction import Redactor
        from ..sasl.mechanisms import Plain

        redactor = Redactor()
        redactor.add_secrets(Plain(*profile.settings.auth).secrets)
        reply = redactor.reply(reply)
    what = f"{reply.code} {reply.text[:100]!r}"
    raise AuthenticationFailed(f"AUTH PLAIN with the given credentials failed: {what}")


class _BudgetSpent(Exception):
    """The campaign's deadline (``Runner.deadline``) cut a calibration run."""


def _run(runner: Runner, events: list[Event]) -> Observation:
    obs, _ = runner.run(events)
    if obs.stopped:
        raise _BudgetSpent
    return obs


def fingerprint(runner: Runner, settings: Settings) -> Profile:
    """Run the calibration dialogues (about ten connections) and return the profile;
    within ``runner.deadline``: a server too slow for the budget gets a partial profile
    and a note (the campaign then runs no probe)."""
    profile = Profile(settings)
    try:
        _calibrate(runner, settings, profile)
    except _BudgetSpent:
        profile.notes.append("the budget ran out during the calibration: no probe was run")
    return profile


def _calibrate(runner: Runner, settings: Settings, profile: Profile) -> None:
    # 1. banner and EHLO (HELO if EHLO is refused), then STARTTLS and EHLO again.
    events = [connect(), send(b"EHLO " + settings.ehlo.encode() + b"\r\n", 1)]
    obs = _run(runner, events)
    conn = obs.conns[0]
    if not conn.steps or not conn.steps[0].received:
        raise ConnectionError(f"no banner from the server ({conn.end} {conn.detail})".strip())
    profile.banner = conn.steps[0].received
    words = _keywords(conn, 1)
    if words is None:
        profile.ehlo = False
        profile.notes.append("EHLO refused; HELO used")
        words = {}
    profile.keywords = profile.keywords_before_tls = words
    if settings.tls == "starttls":
        if "STARTTLS" not in words:
            profile.notes.append("STARTTLS not offered: probes run in cleartext")
        else:
            events = [connect(), send(profile.hello(), 1), send(b"STARTTLS\r\n", 1), starttls()]
            events.append(send(profile.hello(), 1))
            obs = _run(runner, events)
            after = _keywords(obs.conns[0], 4) if obs.conns[0].end == "closed" else None
            if after is None:
                profile.notes.append("STARTTLS failed: probes run in cleartext")
            else:
                profile.tls_active = True
                profile.keywords = after
    elif settings.tls == "implicit":
        profile.tls_active = True
    # 2. baseline latency (NOOP) and error latency (an unknown verb), same connection.
    noops = [send(b"NOOP\r\n", 1) for _ in range(3)]
    errors = [send(b"XFUZZCAL\r\n", 1) for _ in range(2)]
    obs = _run(runner, [*profile.prefix("greeted"), *noops, *errors, send(b"QUIT\r\n", 1)])
    conn = obs.conns[0]
    steps = [s for s in conn.steps if s.event is not None and s.event.dir == "c2s"]
    noop_times = [s.elapsed for s in steps if s.event is not None and s.event.data == b"NOOP\r\n"]
    error_times = [s.elapsed for s in steps if s.event is not None and b"XFUZZCAL" in s.event.data]
    if noop_times:
        profile.latency = statistics.median(noop_times)
    if error_times:
        profile.error_latency = max(error_times)
    if settings.auth is not None:
        _check_auth(conn, profile)
    # 3. MAIL without AUTH: 530 means the server requires authentication (RFC 4954 §6).
    bare = [e for e in profile.prefix("greeted") if not e.data.startswith(b"AUTH ")]
    obs = _run(runner, [*bare, send(f"MAIL FROM:<{settings.mail_from}>\r\n".encode(), 1)])
    codes = _codes(obs.conns[0])
    profile.requires_auth = bool(codes) and codes[-1] == 530
    # 3b. MAIL before any HELO/EHLO: refused or taken (RFC 5321 leaves it to the server).
    obs = _run(runner, [connect(), send(f"MAIL FROM:<{settings.mail_from}>\r\n".encode(), 1)])
    codes = _codes(obs.conns[0])
    profile.mail_without_hello_refused = len(codes) >= 2 and codes[1] // 100 == 5
    # 4. a sender and a recipient that reach DATA.
    senders = [settings.mail_from, ""]
    recipients = (
        [settings.rcpt_to]
        if settings.rcpt_to
        else ["postmaster@localhost", "fuzz@example.com", "test@localhost", "postmaster"]
    )
    for sender in senders:
        events = [*profile.prefix("greeted"), send(f"MAIL FROM:<{sender}>\r\n".encode(), 1)]
        for rcpt in recipients:
            events.append(send(f"RCPT TO:<{rcpt}>\r\n".encode(), 1))
        events.append(send(b"QUIT\r\n", 1))
        obs = _run(runner, events)
        codes = _codes(obs.conns[0])
        base = _replies_in(profile.prefix("greeted"))
        if len(codes) <= base or codes[base] // 100 != 2:
            continue
        for offset, rcpt in enumerate(recipients):
            if base + 1 + offset < len(codes) and codes[base + 1 + offset] // 100 == 2:
                profile.mail_from, profile.rcpt_to = sender, rcpt
                break
        if profile.rcpt_to:
            break
    if not profile.rcpt_to:
        profile.mail_from = settings.mail_from
        profile.rcpt_to = recipients[0]
        profile.notes.append("no recipient accepted: DATA probes are skipped")
        return
    obs = _run(runner, profile.prefix("data"))
    codes = _codes(obs.conns[0])
    profile.can_reach_data = bool(codes) and codes[-1] == 354
    # 5. a plain domainless sender and recipient (RFC 5321 §4.1.2 wants a domain; lenient
    #    servers take it): the shell-metacharacter probes that only lack a domain need a
    #    refusal here to mean anything.
    obs = _run(runner, [*profile.prefix("greeted"), send(b"MAIL FROM:<smtpprotofuzz>\r\n", 1)])
    codes = _codes(obs.conns[0])
    profile.domainless_mail_ok = bool(codes) and codes[-1] // 100 == 2
    obs = _run(runner, [*profile.prefix("mail"), send(b"RCPT TO:<smtpprotofuzz>\r\n", 1)])
    codes = _codes(obs.conns[0])
    profile.domainless_rcpt_ok = bool(codes) and codes[-1] // 100 == 2
    if not profile.can_reach_data:
        profile.notes.append("DATA refused: DATA probes are skipped")
