"""The deterministic probes: one small dialogue per known bug class, each with its oracle.

Every probe is a list of client events on fresh connections, built from the calibrated
``Profile`` (so it reaches the state it needs with a sender and recipient the server
takes), with exactly one write marked as the trigger. A correct server answers each one
in a way the oracle tells apart from the flaw:

* **smuggling** (RFC 5321 §4.1.1.4; CVE-2023-51764/51765/51766, CVE-2024-27305): the
  message carries a non-standard end-of-data, then a whole second transaction, then the
  real ``CRLF.CRLF``. A correct server sends one reply to all of it; a vulnerable one
  answers 250 early and then runs the smuggled MAIL/RCPT/DATA.
* **starttls** (RFC 3207 §4.2, §5; CVE-2011-0411, CVE-2024-34083): ``STARTTLS\\r\\nNOOP``
  in one write; a reply that arrives after the handshake before we speak was injected.
  Also STARTTLS advertised after TLS, a second STARTTLS, and the envelope or HELO
  surviving the handshake.
* **state** (RFC 5321 §3.3, §4.1.1.4-5, §4.1.4; RFC 4954 §4; RFC 3030 §2): commands
  accepted out of sequence: RCPT before MAIL, DATA without MAIL or RCPT, nested MAIL,
  RSET/EHLO/end-of-data not clearing the transaction, AUTH twice, in a transaction,
  before EHLO or before TLS when only offered after it, AUTH with bogus credentials,
  BDAT without a transaction, DATA after BDAT.
* **syntax** (RFC 5321 §4.1.1.1, §4.1.2, §4.1.1.11; RFC 1870 §6; RFC 6531): a 2xx to a
  command that breaks the ABNF: EHLO without a domain, domainless local parts with shell
  metacharacters (CVE-2019-10149, CVE-2020-7247 class), unknown parameters, SIZE above
  the advertised limit, 8-bit addresses without SMTPUTF8, the null path as recipient.
* **reply** (RFC 5321 §4.2, RFC 2920 §3.1): pipelined writes get exactly one reply per
  command; every verb's reply parses; no verb leaves the client waiting.
* **crash** (RFC 5321 §4.5.3.1 limits; Exim/OpenSMTPD advisories): over-long lines,
  domains, local parts, parameters and data lines, many recipients, many labels, NUL,
  8-bit and format-string bytes, bad address literals, source routes, quoted local
  parts, invalid base64 in AUTH, BDAT and SIZE values at integer-overflow edges,
  pipelined bursts, the error limit, an empty message. Sizes grow step by step, so the
  first one that kills the server is close to its limit. Oracle: the server dies (the
  next connection is refused) or a probe gets no reply at all (hang).
* **resource** (CWE-407): the time of one reply as the input grows four-fold.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .transcript import Event, close_notify, connect, send, starttls

if TYPE_CHECKING:
    from .fingerprint import Profile


__all__ = ["FAMILIES", "RCPT_SERIES", "Probe", "build_probes"]

#: The probe families, in the order a campaign runs them (crashes last: they may kill
#: the server).
FAMILIES = ("smuggling", "starttls", "state", "syntax", "reply", "resource", "crash")

#: Non-standard end-of-data sequences (RFC 5321 §4.1.1.4 allows CRLF.CRLF only).
SMUGGLING_ENDINGS: dict[str, bytes] = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.LF": b"\r.\n",
    "CR.CR": b"\r.\r",
    "LF.CR": b"\n.\r",
    "CRLF.CR": b"\r\n.\r",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.NUL.CRLF": b"\r\n.\x00\r\n",
    "CRLF.NUL-CRLF": b"\r\n\x00.\r\n",
    "CRLF..CRLF": b"\r\n..\r\n",
    "CRLF.SP-CRLF": b"\r\n. \r\n",
}


#: Recipients in the RCPT cost series (a correct server takes at least 100, §4.5.3.1.8).
RCPT_SERIES = 45


@dataclass
class Probe:
    """One dialogue, its oracle and what to say if the oracle fires."""

    family: str
    name: str
    oracle: str
    events: list[Event]
    title: str
    state: str
    verb: str
    severity: str
    reference: str
    correct: str
    params: dict[str, Any] = field(default_factory=dict)
    #: Also judge "hang" (no reply at all to the trigger), confirmed with ``control``.
    hang: bool = False
    #: Apply the generic reply-grammar oracle to this run (off after close_notify, where
    #: TLS records may follow in the clear).
    generic: bool = True


def _quit() -> Event:
    return send(b"QUIT\r\n", 1)


def _line(text: str | bytes) -> bytes:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return data + b"\r\n"


class _Builder:
    """Builds the probes of one family from the profile."""

    def __init__(self, profile: Profile) -> None:
        self.p = profile
        self.mf = profile.mail_from
        self.rt = profile.rcpt_to

    def mail(self, extra: str = "") -> bytes:
        return _line(f"MAIL FROM:<{self.mf}>{extra}")

    def rcpt(self, extra: str = "") -> bytes:
        return _line(f"RCPT TO:<{self.rt}>{extra}")

    def grace(self) -> float:
        """How long to keep reading for replies a correct server never sends."""
        return min(1.0, max(0.3, 10 * max(self.p.latency, self.p.error_latency)))

    def accepted(
        self,
        family: str,
        name: str,
        events: list[Event],
        title: str,
        state: str,
        verb: str,
        reference: str,
        correct: str,
        *,
        severity: str = "medium",
        codes: tuple[int, ...] = (2, 3),
    ) -> Probe:
        return Probe(
            family,
            name,
            "accepted",
            events,
            title,
            state,
            verb,
            severity,
            reference,
            correct,
            {"codes": list(codes)},
        )

    # -- smuggling ----------------------------------------------------------------

    def smuggling(self) -> Iterator[Probe]:
        if not self.p.can_reach_data:
            return
        smuggled = self.mail() + self.rcpt() + b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
        for name, ending in SMUGGLING_ENDINGS.items():
            content = b"Subject: smtpproto fuzz\r\n\r\nfirst message" + ending + smuggled
            events = [
                *self.p.prefix("data"),
                send(content, 1, trigger=True, grace=self.grace()),
                _quit(),
            ]
            yield Probe(
                "smuggling",
                f"smuggling-{name}",
                "smuggling",
                events,
                f"SMTP smuggling: {name} is taken as the end of the message data",
                "data",
                f"DATA end {name}",
                "high",
                "RFC 5321 §4.1.1.4, §2.3.8; CVE-2023-51764 (Postfix), CVE-2023-51765 "
                "(Sendmail), CVE-2023-51766 (Exim), CVE-2024-27305 (aiosmtpd)",
                "only CRLF.CRLF ends the data: the server stays in DATA, takes the rest as "
                "message text and sends one reply for the whole message",
            )

    # -- STARTTLS -----------------------------------------------------------------

    def starttls(self) -> Iterator[Probe]:
        p = self.p
        if p.settings.tls == "implicit" or "STARTTLS" not in p.keywords_before_tls:
            return
        hello = send(p.hello(), 1)
        ref = "RFC 3207 §4.2, §5"
        yield Probe(
            "starttls",
            "starttls-injection",
            "unsolicited",
            [
                connect(),
                hello,
                send(b"STARTTLS\r\nNOOP\r\n", 1),
                starttls(trigger=True, grace=max(1.0, self.grace())),
                send(p.hello(), 1),
                _quit(),
            ],
            "STARTTLS command injection: plaintext pipelined behind STARTTLS is executed "
            "inside the TLS session",
            "tls-handshake",
            "STARTTLS",
            "high",
            f"{ref}; CVE-2011-0411 (Postfix), CVE-2021-38371 (Exim), CVE-2024-34083 (aiosmtpd)",
            "the server discards what was buffered before the handshake and sends nothing "
            "until the client speaks inside TLS",
        )
        tls = [connect(), hello, send(b"STARTTLS\r\n", 1), starttls()]
        yield Probe(
            "starttls",
            "starttls-advertised-after-tls",
            "advertises",
            [*tls, send(p.hello(), 1, trigger=True), _quit()],
            "STARTTLS is still advertised after the TLS handshake",
            "tls",
            "EHLO",
            "low",
            ref,
            "the EHLO reply inside TLS does not list STARTTLS",
            {"keyword": "STARTTLS"},
        )
        yield self.accepted(
            "starttls",
            "starttls-twice",
            [
                *tls,
                send(p.hello(), 1),
                send(b"STARTTLS\r\n", 1),
                send(b"NOOP\r\n", 1, trigger=True),
                _quit(),
            ],
            "a second STARTTLS inside TLS gets 220, then no handshake: the session goes on "
            "as if nothing happened",
            "tls",
            "STARTTLS",
            ref,
            "503 (TLS is already active), or a real second handshake after 220",
            codes=(2,),
        )
        yield self.accepted(
            "starttls",
            "starttls-keeps-envelope",
            [
                connect(),
                hello,
                send(self.mail(), 1),
                send(b"STARTTLS\r\n", 1),
                starttls(),
                send(self.rcpt(), 1, trigger=True),
                _quit(),
            ],
            "the transaction started before STARTTLS survives the handshake",
            "tls",
            "RCPT",
            ref + " (discard all knowledge obtained before TLS)",
            "503: after the handshake the server is back in its initial state",
            severity="high",
        )
        if p.mail_without_hello_refused:
            yield self.accepted(
                "starttls",
                "starttls-keeps-helo",
                [*tls, send(self.mail(), 1, trigger=True), _quit()],
                "the HELO/EHLO of before STARTTLS survives the handshake (MAIL accepted "
                "without a new EHLO)",
                "tls",
                "MAIL",
                ref + " (discard all knowledge obtained before TLS)",
                "503 as on a fresh connection, where this server refuses MAIL before EHLO",
            )
        yield Probe(
            "starttls",
            "cleartext-after-close-notify",
            "accepted",
            [
                *tls,
                send(p.hello(), 1),
                send(self.mail(), 1),
                close_notify(),
                send(self.rcpt(), 1, trigger=True),
            ],
            "after the client's close_notify the session goes on in cleartext",
            "tls-closed",
            "RCPT",
            "high",
            "RFC 8446 §6.1, RFC 3207 §4.2 (no downgrade to cleartext)",
            "the server closes the connection after close_notify; no SMTP reply in clear",
            {"codes": [2, 3, 4, 5]},
            generic=False,
        )

    # -- state --------------------------------------------------------------------

    def state(self) -> Iterator[Probe]:
        p = self.p
        seq = "RFC 5321 §3.3, §4.1.4 (503 bad sequence of commands)"
        yield self.accepted(
            "state",
            "rcpt-before-mail",
            [*p.prefix("greeted"), send(self.rcpt(), 1, trigger=True), _quit()],
            "RCPT is accepted before MAIL",
            "greeted",
            "RCPT",
            seq,
            "503 bad sequence of commands",
        )
        yield self.accepted(
            "state",
            "data-without-mail",
            [*p.prefix("greeted"), send(b"DATA\r\n", 1, trigger=True)],
            "DATA is accepted with no mail transaction",
            "greeted",
            "DATA",
            seq,
            "503 bad sequence of commands",
        )
        yield self.accepted(
            "state",
            "data-without-rcpt",
            [*p.prefix("mail"), send(b"DATA\r\n", 1, trigger=True)],
            "DATA is accepted without any recipient",
            "mail",
            "DATA",
            "RFC 5321 §3.3 (no valid recipients: 503 or 554)",
            "503 or 554 no valid recipients",
        )
        yield self.accepted(
            "state",
            "nested-mail",
            [*p.prefix("mail"), send(self.mail(), 1, trigger=True), _quit()],
            "a second MAIL inside an open transaction is accepted",
            "mail",
            "MAIL",
            seq,
            "503 nested MAIL command",
        )
        yield self.accepted(
            "state",
            "rset-keeps-envelope",
            [*p.prefix("mail"), send(b"RSET\r\n", 1), send(self.rcpt(), 1, trigger=True), _quit()],
            "RSET does not clear the transaction (RCPT accepted after MAIL, RSET)",
            "mail+RSET",
            "RCPT",
            "RFC 5321 §4.1.1.5 (RSET clears sender, recipients and data)",
            "503: after RSET there is no transaction",
        )
        yield self.accepted(
            "state",
            "ehlo-keeps-envelope",
            [*p.prefix("mail"), send(p.hello(), 1), send(self.rcpt(), 1, trigger=True), _quit()],
            "EHLO does not clear the transaction (RCPT accepted after MAIL, EHLO)",
            "mail+EHLO",
            "RCPT",
            "RFC 5321 §4.1.4 (EHLO in a session resets the state as RSET does)",
            "503: after EHLO there is no transaction",
        )
        if p.can_reach_data:
            yield self.accepted(
                "state",
                "message-keeps-envelope",
                [
                    *p.prefix("data"),
                    send(b"Subject: fuzz\r\n\r\nbody\r\n.\r\n", 1),
                    send(b"DATA\r\n", 1, trigger=True),
                ],
                "the envelope survives the end of a message (DATA accepted again without "
                "MAIL and RCPT)",
                "message-done",
                "DATA",
                "RFC 5321 §4.1.1.4 (after the final reply the transaction is cleared)",
                "503: a new transaction needs MAIL and RCPT",
            )
        if p.chunking:
            bdat = "RFC 3030 §2"
            yield self.accepted(
                "state",
                "bdat-without-rcpt",
                [*p.prefix("mail"), send(b"BDAT 5 LAST\r\nhello", 1, trigger=True), _quit()],
                "BDAT is accepted without any recipient",
                "mail",
                "BDAT",
                f"{bdat}, RFC 5321 §3.3 (503/554)",
                "503 or 554 no valid recipients",
                codes=(2,),
            )
            yield self.accepted(
                "state",
                "data-after-bdat",
                [
                    *p.prefix("rcpt"),
                    send(b"BDAT 5\r\nhello", 1),
                    send(b"DATA\r\n", 1, trigger=True),
                ],
                "DATA is accepted after a BDAT in the same transaction",
                "bdat",
                "DATA",
                f"{bdat} (BDAT and DATA never mix in one transaction)",
                "503 bad sequence of commands",
            )
        yield self.after_quit()
        yield from self.auth()

    def _auth_start(self) -> bytes:
        mechs = self.p.auth_mechanisms
        mech = "PLAIN" if "PLAIN" in mechs or not mechs else mechs[0]
        return _line(f"AUTH {mech}")

    def after_quit(self) -> Probe:
        return self.accepted(
            "state",
            "command-after-quit",
            [*self.p.prefix("greeted"), send(b"QUIT\r\n", 1), send(b"NOOP\r\n", 1, trigger=True)],
            "the server goes on reading commands after QUIT",
            "quit",
            "NOOP",
            "RFC 5321 §4.1.1.10 (the receiver MUST send 221 and then close the channel)",
            "221, then the connection is closed: nothing answers the NOOP",
            severity="low",
            codes=(2, 3, 4, 5),
        )

    def _auth_plain(self) -> bytes:
        user, password = self.p.settings.auth or ("", "")
        return b"AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()) + b"\r\n"

    def auth(self) -> Iterator[Probe]:
        p = self.p
        ref = "RFC 4954 §4"
        if not p.auth_mechanisms and "AUTH" not in p.keywords_before_tls:
            return
        cancel = send(b"*\r\n", 1)
        bare = [e for e in p.prefix("greeted") if not e.data.startswith(b"AUTH ")]
        if p.auth_mechanisms and p.settings.auth is not None:
            # With the user's credentials, so that success (235) is the verdict: a 334
            # alone is what some lenient servers (aiosmtpd) answer before checking.
            yield self.accepted(
                "state",
                "auth-in-transaction",
                [*bare, send(self.mail(), 1), send(self._auth_plain(), 1, trigger=True), _quit()],
                "AUTH succeeds during a mail transaction",
                "mail",
                "AUTH",
                f"{ref} (AUTH in a transaction MUST get 503)",
                "503",
                codes=(2,),
            )
        if p.auth_mechanisms:
            if p.tls_active and p.settings.tls == "starttls":
                yield self.accepted(
                    "state",
                    "auth-before-ehlo-after-tls",
                    [
                        connect(),
                        send(p.hello(), 1),
                        send(b"STARTTLS\r\n", 1),
                        starttls(),
                        send(self._auth_start(), 1, trigger=True),
                        cancel,
                    ],
                    "AUTH is accepted after STARTTLS before the new EHLO",
                    "tls",
                    "AUTH",
                    f"{ref}, RFC 3207 §4.2 (after TLS the client starts over with EHLO)",
                    "503 send EHLO first",
                )
            yield self.accepted(
                "state",
                "auth-before-ehlo",
                [connect(), send(self._auth_start(), 1, trigger=True), cancel],
                "AUTH is accepted before EHLO",
                "connected",
                "AUTH",
                f"{ref} (AUTH is an ESMTP extension: EHLO first)",
                "503 send EHLO first",
            )
            if "PLAIN" in p.auth_mechanisms:
                token = base64.b64encode(b"\0smtpproto-fuzz-nobody\0wrong-password-4711")
                yield self.accepted(
                    "state",
                    "auth-bogus-credentials",
                    [*bare, send(b"AUTH PLAIN " + token + b"\r\n", 1, trigger=True), _quit()],
                    "AUTH succeeds with a made-up user and password",
                    "greeted",
                    "AUTH",
                    f"{ref} (535 authentication credentials invalid); authentication bypass",
                    "535",
                    severity="high",
                    codes=(2,),
                )
                if p.requires_auth:
                    yield self.accepted(
                        "state",
                        "auth-bypass-after-failure",
                        [
                            *bare,
                            send(b"AUTH PLAIN " + token + b"\r\n", 1, may_fail=True),
                            send(self.mail(), 1, trigger=True),
                            _quit(),
                        ],
                        "after a failed AUTH the session counts as authenticated",
                        "auth-failed",
                        "MAIL",
                        f"{ref}, §6 (530 until a successful AUTH)",
                        "530 authentication required, as before the failed AUTH",
                        severity="high",
                        codes=(2,),
                    )
            if p.settings.auth is not None:
                yield self.accepted(
                    "state",
                    "auth-twice",
                    [*p.prefix("greeted"), send(self._auth_start(), 1, trigger=True), cancel],
                    "a second AUTH after a successful one is accepted",
                    "authenticated",
                    "AUTH",
                    f"{ref} (after a successful AUTH, AUTH MUST get 503)",
                    "503",
                )
        if (
            p.tls_active
            and p.settings.tls == "starttls"
            and p.auth_mechanisms
            and "AUTH" not in p.keywords_before_tls
        ):
            yield self.accepted(
                "state",
                "auth-unadvertised",
                [connect(), send(p.hello(), 1), send(self._auth_start(), 1, trigger=True), cancel],
                "AUTH is accepted in cleartext although only offered after STARTTLS",
                "greeted-cleartext",
                "AUTH",
                f"{ref}, RFC 3207 §4.2, RFC 8314 §5",
                "503/530/538: AUTH is not available before TLS",
            )

    # -- syntax -------------------------------------------------------------------

    def syntax(self) -> Iterator[Probe]:
        p = self.p
        yield self.accepted(
            "syntax",
            "ehlo-no-domain",
            [connect(), send(b"EHLO\r\n", 1, trigger=True), _quit()],
            "EHLO without a domain is accepted",
            "connected",
            "EHLO",
            "RFC 5321 §4.1.1.1 (EHLO SP domain; 501 syntax error)",
            "501 syntax error",
            severity="low",
            codes=(2,),
        )
        shell = (
            'RFC 5321 §4.1.2 (Mailbox = Local-part "@" Domain); CVE-2019-10149 (Exim), '
            "CVE-2020-7247 (OpenSMTPD)"
        )
        # "root;id" breaks the Local-part grammar itself; the others are atext without a
        # domain, tried only when the server refuses a plain domainless address (so a
        # server lenient about domains, such as aiosmtpd, is not reported for them).
        for index, local in enumerate(["root;id", "|id", "`id`", "$(id)"]):
            if index and p.domainless_rcpt_ok and p.domainless_mail_ok:
                break
            if index == 0 or not p.domainless_rcpt_ok:
                yield self.accepted(
                    "syntax",
                    f"shell-local-part-rcpt-{index}",
                    [
                        *p.prefix("mail"),
                        send(_line(f"RCPT TO:<{local}>"), 1, trigger=True),
                        _quit(),
                    ],
                    f"a domainless local part with shell metacharacters is accepted: <{local}>",
                    "mail",
                    "RCPT",
                    shell,
                    "501/553: a recipient needs a domain (only Postmaster may go without)",
                    severity="high",
                    codes=(2,),
                )
            if index and p.domainless_mail_ok:
                continue
            yield self.accepted(
                "syntax",
                f"shell-local-part-mail-{index}",
                [*p.prefix("greeted"), send(_line(f"MAIL FROM:<{local}>"), 1, trigger=True)],
                f"a domainless sender with shell metacharacters is accepted: <{local}>",
                "greeted",
                "MAIL",
                shell,
                "501/553: a sender needs a domain",
                severity="high",
                codes=(2,),
            )
        unknown = "RFC 5321 §4.1.1.11 (an unrecognised parameter gets 555)"
        yield self.accepted(
            "syntax",
            "unknown-param-mail",
            [*p.prefix("greeted"), send(self.mail(" XFUZZPARAM=1"), 1, trigger=True), _quit()],
            "MAIL with an unknown ESMTP parameter is accepted",
            "greeted",
            "MAIL",
            unknown,
            "555 parameter not recognised",
            severity="low",
            codes=(2,),
        )
        yield self.accepted(
            "syntax",
            "unknown-param-rcpt",
            [*p.prefix("mail"), send(self.rcpt(" XFUZZPARAM=1"), 1, trigger=True), _quit()],
            "RCPT with an unknown ESMTP parameter is accepted",
            "mail",
            "RCPT",
            unknown,
            "555 parameter not recognised",
            severity="low",
            codes=(2,),
        )
        limit = p.size_limit
        if limit is not None:
            yield self.accepted(
                "syntax",
                "size-limit-ignored",
                [*p.prefix("greeted"), send(self.mail(f" SIZE={limit + 1}"), 1, trigger=True)],
                "MAIL with SIZE above the advertised maximum is accepted",
                "greeted",
                "MAIL",
                "RFC 1870 §6 (552 message size exceeds fixed maximum)",
                f"552: the server advertised SIZE {limit}",
                codes=(2,),
            )
        eight = "RFC 5321 §2.4, §4.1.2; RFC 6531 §3.3 (8-bit addresses need SMTPUTF8)"
        if "SMTPUTF8" in p.keywords:
            return  # an SMTPUTF8 server may take UTF-8 addresses (RFC 6531 §3.2)
        yield self.accepted(
            "syntax",
            "8bit-address-mail",
            [
                *p.prefix("greeted"),
                send(b"MAIL FROM:<d\xc3\xa9j\xc3\xa0@example.com>\r\n", 1, trigger=True),
            ],
            "a sender with octets above 127 is accepted without SMTPUTF8",
            "greeted",
            "MAIL",
            eight,
            "501/553 (or 555 without SMTPUTF8)",
            severity="low",
            codes=(2,),
        )
        yield self.accepted(
            "syntax",
            "8bit-address-rcpt",
            [
                *p.prefix("mail"),
                send(b"RCPT TO:<d\xc3\xa9j\xc3\xa0@example.com>\r\n", 1, trigger=True),
            ],
            "a recipient with octets above 127 is accepted without SMTPUTF8",
            "mail",
            "RCPT",
            eight,
            "501/553",
            severity="low",
            codes=(2,),
        )

    # -- replies ------------------------------------------------------------------

    def reply(self) -> Iterator[Probe]:
        p = self.p
        if p.pipelining:
            batch = self.mail() + self.rcpt() + self.rcpt() + b"RSET\r\nNOOP\r\n"
            yield Probe(
                "reply",
                "pipelining-count",
                "count",
                [*p.prefix("greeted"), send(batch, 5, trigger=True, grace=self.grace()), _quit()],
                "pipelined commands do not get exactly one reply each",
                "greeted",
                "RCPT",
                "high",
                "RFC 2920 §3.1 (one reply per command, in order)",
                "5 replies to the 5 pipelined commands",
            )
        yield Probe(
            "reply",
            "rset-reply-count",
            "count",
            [
                *p.prefix("mail"),
                send(b"RSET\r\n", 1, trigger=True, grace=self.grace()),
                send(b"NOOP\r\n", 1),
                _quit(),
            ],
            "a command in a transaction gets more than one reply",
            "mail",
            "RSET",
            "medium",
            "RFC 5321 §4.2 (one reply per command)",
            "one 250 for RSET",
        )
        yield Probe(
            "reply",
            "bare-cr-command-split",
            "count",
            [*p.prefix("greeted"), send(b"NOOP\rNOOP\r\n", 1, trigger=True, grace=self.grace())],
            "a bare CR ends a command line (two commands answered for one line)",
            "greeted",
            "NOOP",
            "medium",
            "RFC 5321 §2.3.8 (only CRLF ends a line)",
            "one reply to the one line",
        )
        verbs = [
            "HELP",
            "HELP MAIL",
            f"VRFY {self.rt}",
            f"EXPN {self.rt}",
            "VRFY postmaster",
            "EXPN postmaster",
            "NOOP",
            "NOOP fuzz",
            "RSET",
            "ETRN example.com",
            "TURN",
            "XFUZZVERB",
        ]
        for verb in verbs:
            yield Probe(
                "reply",
                f"verb-{verb.split()[0].lower()}-{len(verb)}",
                "invalid",
                [*p.prefix("greeted"), send(_line(verb), 1, trigger=True), _quit()],
                f"the reply to {verb.split()[0]} breaks the reply grammar or never comes",
                "greeted",
                verb.split()[0],
                "medium",
                "RFC 5321 §4.2 (reply syntax), §4.5.3.2 (timeouts)",
                "one well-formed reply",
                hang=True,
            )

    # -- resource -----------------------------------------------------------------

    def resource(self) -> Iterator[Probe]:
        p = self.p
        for size in (250, 1000, 4000, 16000):
            yield Probe(
                "resource",
                f"line-cost-{size}",
                "slow",
                [*p.prefix("greeted"), send(_line("NOOP " + "a" * size), 1, trigger=True)],
                "the cost of one command line grows faster than its length",
                "greeted",
                "NOOP",
                "medium",
                "CWE-407 (algorithmic complexity); RFC 5321 §4.5.3.1.4",
                "a 500 line-too-long (or any reply) in about the same time for any length",
                {"size": size},
            )
        if p.rcpt_to:
            yield Probe(
                "resource",
                "rcpt-cost",
                "slow",
                [*p.prefix("mail"), *[send(self.rcpt(), 1) for _ in range(RCPT_SERIES)]],
                "the cost of one RCPT grows with the recipients already given",
                "rcpt",
                "RCPT",
                "medium",
                "CWE-407 (algorithmic complexity); RFC 5321 §4.5.3.1.8",
                "every RCPT answered in about the same time",
                {"size": RCPT_SERIES},
            )

    # -- crash --------------------------------------------------------------------

    def _crash(
        self,
        name: str,
        events: list[Event],
        title: str,
        state: str,
        verb: str,
        reference: str,
        correct: str = "a 5xx reply, and the server stays up",
        *,
        hang: bool = True,
    ) -> Probe:
        return Probe(
            "crash",
            name,
            "crash",
            events,
            title,
            state,
            verb,
            "high",
            reference,
            correct,
            hang=hang,
        )

    def _crash_line(
        self,
        name: str,
        stage: str,
        line: bytes,
        title: str,
        verb: str,
        reference: str,
        *,
        expect: int = 1,
    ) -> Probe:
        events = [*self.p.prefix(stage), send(line, expect, trigger=True), _quit()]
        return self._crash(name, events, title, stage, verb, reference)

    def crash(self) -> Iterator[Probe]:
        p = self.p
        limits = "RFC 5321 §4.5.3.1"
        yield self._crash(
            "error-limit",
            [*p.prefix("greeted"), send(b"XFUZZ1\r\n", 1, trigger=True)]
            + [send(b"XFUZZ%d\r\n" % i, 1) for i in range(2, 41)],
            "the server dies when a client reaches its error limit",
            "greeted",
            "XFUZZ",
            "RFC 5321 §4.3.2 (421 closing the transmission channel)",
            "421 and a clean close",
        )
        for n in (600, 800, 1000, 1300, 1700, 2200, 2800, 3500, 5000, 10000, 70000):
            yield self._crash_line(
                f"long-line-{n}",
                "greeted",
                _line("NOOP " + "a" * (n - 7)),
                f"a command line of {n} octets kills the server",
                "NOOP",
                f"{limits}.4 (command line ≤ 512: 500 line too long)",
            )
        for n in (70, 100, 140, 180, 230, 300, 1000):
            yield self._crash_line(
                f"long-ehlo-{n}",
                "connected",
                _line("EHLO " + _domain(n)),
                f"an EHLO argument of {n} octets kills or stalls the server",
                "EHLO",
                f"{limits}.2 (domain ≤ 255), §4.5.3.2",
            )
        for n in (70, 100, 130, 160, 190, 220, 250, 300, 1000):
            yield self._crash_line(
                f"long-domain-{n}",
                "greeted",
                _line(f"MAIL FROM:<a@{_domain(n)}>"),
                f"a domain of {n} octets kills the server",
                "MAIL",
                f"{limits}.2 (domain ≤ 255 octets)",
            )
        for k in (10, 15, 20, 26, 33, 40, 64):
            yield self._crash_line(
                f"many-labels-{k}",
                "greeted",
                _line("MAIL FROM:<a@" + "a." * k + "com>"),
                f"a domain with {k + 1} labels kills the server",
                "MAIL",
                "RFC 5321 §4.1.2 (Domain)",
            )
        for n in (65, 80, 100, 130, 160, 200, 300, 1000):
            yield self._crash_line(
                f"long-local-part-{n}",
                "greeted",
                _line(f"MAIL FROM:<{'a' * n}@example.com>"),
                f"a local part of {n} octets kills the server",
                "MAIL",
                f"{limits}.1 (local part ≤ 64 octets)",
            )
        for n in (100, 150, 200, 260, 330, 420, 1000):
            yield self._crash_line(
                f"long-param-{n}",
                "greeted",
                self.mail(" XFUZZPARAM=" + "a" * n),
                f"an ESMTP parameter value of {n} octets kills the server",
                "MAIL",
                "RFC 5321 §4.1.2 (esmtp-value)",
            )
        odd = [
            ("nul-noop", "greeted", b"NOOP a\x00b\r\n", "NOOP", "RFC 5321 §2.3.8, §4.1.1"),
            (
                "nul-mail",
                "greeted",
                b"MAIL FROM:<a\x00b@example.com>\r\n",
                "MAIL",
                "RFC 5321 §4.1.2",
            ),
            ("nul-ehlo", "connected", b"EHLO a\x00b.example.com\r\n", "EHLO", "RFC 5321 §4.1.1.1"),
            ("8bit-ehlo", "connected", b"EHLO \xc3\xa9xample.com\r\n", "EHLO", "RFC 5321 §4.1.1.1"),
            ("8bit-helo", "connected", b"HELO \xff\xfe.example\r\n", "HELO", "RFC 5321 §4.1.1.1"),
            ("format-noop", "greeted", b"NOOP %n%n%n%s%s%s%x\r\n", "NOOP", "format-string class"),
            (
                "format-mail",
                "greeted",
                b"MAIL FROM:<%n%s%x@example.com>\r\n",
                "MAIL",
                "format-string class",
            ),
            ("format-ehlo", "connected", b"EHLO %n%s%x\r\n", "EHLO", "format-string class"),
            (
                "ipv6-9-groups",
                "connected",
                b"EHLO [IPv6:1:2:3:4:5:6:7:8:9]\r\n",
                "EHLO",
                "RFC 5321 §4.1.3; CVE-2019-16928 class",
            ),
            ("ipv6-triple-colon", "connected", b"EHLO [IPv6:1:::2]\r\n", "EHLO", "RFC 5321 §4.1.3"),
            (
                "ipv6-mail",
                "greeted",
                b"MAIL FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9:10]>\r\n",
                "MAIL",
                "RFC 5321 §4.1.3",
            ),
            ("ipv4-octet", "connected", b"EHLO [256.1.1.999]\r\n", "EHLO", "RFC 5321 §4.1.3"),
            ("ipv4-mail", "greeted", b"MAIL FROM:<a@[999.1.1.1]>\r\n", "MAIL", "RFC 5321 §4.1.3"),
            (
                "source-route-mail",
                "greeted",
                b"MAIL FROM:<@a.example.com,@b.example.com:u@example.com>\r\n",
                "MAIL",
                "RFC 5321 §4.1.2, App. C (accept and ignore source routes)",
            ),
            (
                "source-route-rcpt",
                "mail",
                b"RCPT TO:<@a.example.com:u@example.com>\r\n",
                "RCPT",
                "RFC 5321 §4.1.2, App. C",
            ),
            (
                "quoted-local-mail",
                "greeted",
                b'MAIL FROM:<"a b"@example.com>\r\n',
                "MAIL",
                "RFC 5321 §4.1.2 (Quoted-string)",
            ),
            (
                "quoted-local-rcpt",
                "mail",
                b'RCPT TO:<"x y"@example.com>\r\n',
                "RCPT",
                "RFC 5321 §4.1.2 (Quoted-string)",
            ),
            (
                "auth-bad-base64",
                "greeted",
                b"AUTH PLAIN !!!not*base64!!!\r\n",
                "AUTH",
                "RFC 4954 §4 (501 invalid base64); CVE-2020-28017/28021 class",
            ),
            (
                "auth-huge",
                "greeted",
                b"AUTH PLAIN " + b"QUFB" * 25000 + b"\r\n",
                "AUTH",
                "RFC 4954 §4; CVE-2020-28021 class",
            ),
            (
                "size-2^31",
                "greeted",
                self.mail(" SIZE=2147483648"),
                "MAIL",
                "RFC 1870 §4; integer overflow class",
            ),
            (
                "size-2^32",
                "greeted",
                self.mail(" SIZE=4294967296"),
                "MAIL",
                "RFC 1870 §4; integer overflow class",
            ),
            (
                "size-2^64",
                "greeted",
                self.mail(" SIZE=18446744073709551616"),
                "MAIL",
                "RFC 1870 §4; integer overflow class",
            ),
            ("size-negative", "greeted", self.mail(" SIZE=-1"), "MAIL", "RFC 1870 §4"),
            (
                "bdat-negative",
                "rcpt",
                b"BDAT -1 LAST\r\n",
                "BDAT",
                "RFC 3030 §2; CVE-2017-16944 class",
            ),
        ]
        for name, stage, line, verb, ref in odd:
            title = f"{name}: this command kills or stalls the server"
            # A BDAT reply may wait for its chunk (Exim does for "BDAT -1"): no hang check.
            events = [*self.p.prefix(stage), send(line, 1, trigger=True), _quit()]
            yield self._crash(name, events, title, stage, verb, ref, hang=verb != "BDAT")
        yield self._crash(
            "auth-bad-base64-response",
            [
                *p.prefix("greeted"),
                send(b"AUTH LOGIN\r\n", 1),
                send(b"%%%*not-base64\r\n", 1, trigger=True),
                _quit(),
            ],
            "invalid base64 in an AUTH response kills the server",
            "auth",
            "AUTH",
            "RFC 4954 §4 (501 invalid base64); CVE-2020-28017 class",
        )
        for size in ("2147483648", "4294967296", "18446744073709551616"):
            yield self._crash(
                f"bdat-huge-{size}",
                [
                    *p.prefix("rcpt"),
                    send(f"BDAT {size} LAST\r\n".encode(), 0, trigger=True, grace=0.5),
                ],
                f"BDAT {size} kills the server",
                "rcpt",
                "BDAT",
                "RFC 3030 §2 (chunk size); CVE-2017-16943 class (Exim BDAT)",
                "the server waits for the chunk or refuses it, and stays up",
                hang=False,
            )
        for k in (10, 20, 30, 45, 65, 100):
            yield self._crash_line(
                f"pipeline-burst-{k}",
                "greeted",
                b"NOOP\r\n" * k,
                f"{k} pipelined commands in one write kill the server",
                "NOOP",
                "RFC 2920 §3.1 (any number of pipelined commands)",
                expect=k,
            )
        if p.can_reach_data:
            yield self._crash(
                "empty-message",
                [*p.prefix("data"), send(b".\r\n", 1, trigger=True), _quit()],
                "an empty message kills the server",
                "data",
                "DATA",
                "RFC 5321 §4.1.1.4 (an empty message is valid)",
            )
            for n in (1100, 1600, 2200, 3000, 4000, 5200, 6500, 10000, 100000):
                yield self._crash(
                    f"long-data-line-{n}",
                    [
                        *p.prefix("data"),
                        send(b"Subject: x\r\n\r\n" + b"a" * n + b"\r\n.\r\n", 1, trigger=True),
                        _quit(),
                    ],
                    f"a message line of {n} octets kills the server",
                    "data",
                    "DATA",
                    f"{limits}.6 (text line ≤ 1000; a server must not crash)",
                )
        if "STARTTLS" in p.keywords_before_tls and not p.tls_active:
            yield self._crash_line(
                "starttls-in-transaction",
                "mail",
                b"STARTTLS\r\n",
                "STARTTLS in a transaction kills the server",
                "STARTTLS",
                "RFC 3207 §4",
            )
        for n in (6, 10, 15, 20, 27, 35, 45, 70, 110):
            yield self._crash(
                f"many-rcpt-{n}",
                [*p.prefix("mail"), send(self.rcpt(), 1, trigger=True)]
                + [send(self.rcpt(), 1) for _ in range(n - 1)]
                + [_quit()],
                f"{n} recipients in one transaction kill the server",
                "rcpt",
                "RCPT",
                f"{limits}.8 (452 too many recipients)",
                "452 once the server's limit is reached, and it stays up",
            )


def _domain(length: int) -> str:
    """A syntactically valid domain of exactly ``length`` octets (labels ≤ 63)."""
    labels = []
    remaining = length - 4  # ".com"
    while remaining > 0:
        size = min(remaining, 62)
        if remaining - size == 1:
            size -= 1
        labels.append("a" * size)
        remaining -= size + 1
    return ".".join(labels) + ".com" if labels else "a.com"


def build_probes(profile: Profile, families: tuple[str, ...] = FAMILIES) -> list[Probe]:
    """Every probe of the chosen ``families``, in campaign order."""
    builder = _Builder(profile)
    probes: list[Probe] = []
    for family in FAMILIES:
        if family in families:
            probes.extend(getattr(builder, family)())
    return probes
