"""The catalogue of planted flaws for ``flawed_server.py``, with the rule or advisory each breaks.

Every flaw is off by default; ``flawed_server.py`` with no flaw is a strict, correct
RFC 5321 server (see its docstring for the clean behaviour). A flaw, when its trigger is
reached, writes ``FLAW-TRIGGERED <name>`` to the server's log before it misbehaves, so a
test can check that a transcript replay really reaches it.

The thresholds (line lengths, recipient counts, ...) are drawn per run from a seed
(``thresholds(seed)``), printed by the server at start, so a fuzzer cannot be tuned to
them. Classes:

- ``crash``: the process logs and dies (``os._exit``): the connection drops without a
  421 and the next connection is refused.
- ``hang``: the connection stops answering (the thread reads and discards until EOF);
  other connections still work.
- ``smuggling``: a non-standard end-of-data sequence ends the message.
- ``injection``: plaintext is executed where it must not be (STARTTLS, close_notify).
- ``state``: a command is accepted in a state where the RFCs forbid it.
- ``syntax``: a command that violates the RFC 5321 ABNF or the advertised limits is accepted.
- ``reply``: the server's replies break RFC 5321 §4.2 (syntax, count, unsolicited).
- ``resource``: the cost of a command grows faster than linearly with its input.
"""

from __future__ import annotations

import dataclasses
import random

__all__ = ["FLAWS", "Flaw", "Thresholds", "catalogue_markdown", "thresholds"]


@dataclasses.dataclass(frozen=True)
class Flaw:
    """One planted flaw: its class, the rule or advisory it breaks, and what triggers it."""

    kind: str
    reference: str
    trigger: str


#: End-of-data sequences accepted by the ``smuggle-*`` flaws, besides ``CRLF . CRLF``.
SMUGGLE_SEQUENCES: dict[str, bytes] = {
    "smuggle-lf": b"\n.\n",
    "smuggle-lf-crlf": b"\n.\r\n",
    "smuggle-crlf-lf": b"\r\n.\n",
    "smuggle-cr-lf": b"\r.\n",
    "smuggle-cr": b"\r.\r",
    "smuggle-lf-cr": b"\n.\r",
}

_SMUGGLE_REF = (
    "RFC 5321 §4.1.1.4 (end of data is CRLF . CRLF only); SMTP smuggling: "
    "CVE-2023-51764 (Postfix), CVE-2023-51765 (Sendmail), CVE-2023-51766 (Exim), "
    "CVE-2024-27305 (aiosmtpd)"
)

FLAWS: dict[str, Flaw] = {
    **{
        name: Flaw("smuggling", _SMUGGLE_REF, f"{seq!r} ends the message data")
        for name, seq in SMUGGLE_SEQUENCES.items()
    },
    # -- injection -----------------------------------------------------------------------
    "starttls-injection": Flaw(
        "injection",
        "RFC 3207 §5/§6; CVE-2011-0411 (Postfix), CVE-2021-38371 (Exim), CVE-2024-34083 (aiosmtpd)",
        "plaintext pipelined behind STARTTLS is executed after the handshake",
    ),
    "cleartext-after-close-notify": Flaw(
        "injection",
        "RFC 8446 §6.1 / RFC 3207 §4.2 (a TLS session ends the connection, no downgrade)",
        "after the client's close_notify the session goes on in cleartext, state kept",
    ),
    # -- state violations ------------------------------------------------------------------
    "starttls-state-kept": Flaw(
        "state",
        "RFC 3207 §4.2 (discard all knowledge from the client before TLS)",
        "HELO/EHLO and the envelope survive STARTTLS (MAIL/RCPT accepted without new EHLO)",
    ),
    "rcpt-before-mail": Flaw(
        "state", "RFC 5321 §3.3/§4.1.4 (503 bad sequence)", "RCPT accepted before MAIL"
    ),
    "data-without-rcpt": Flaw(
        "state",
        "RFC 5321 §3.3 (no valid recipients: 503/554)",
        "DATA after MAIL without a recipient gets 354",
    ),
    "data-without-mail": Flaw(
        "state", "RFC 5321 §3.3/§4.1.4 (503)", "DATA with no transaction gets 354"
    ),
    "nested-mail": Flaw(
        "state", "RFC 5321 §3.3 / §4.1.4 (503 nested MAIL)", "a second MAIL in a transaction"
    ),
    "rset-keeps-envelope": Flaw(
        "state", "RFC 5321 §4.1.1.5 (RSET clears the envelope)", "RCPT accepted after RSET"
    ),
    "ehlo-keeps-envelope": Flaw(
        "state",
        "RFC 5321 §4.1.4 (EHLO in a transaction acts as RSET)",
        "RCPT accepted after MAIL, EHLO",
    ),
    "data-after-bdat": Flaw(
        "state",
        "RFC 3030 §2 (BDAT and DATA never mix in one transaction)",
        "DATA after a non-LAST BDAT gets 354",
    ),
    "bdat-without-rcpt": Flaw(
        "state", "RFC 3030 §2 / RFC 5321 §3.3 (503)", "BDAT without a recipient gets 250"
    ),
    "auth-twice": Flaw(
        "state",
        "RFC 4954 §4 (after a successful AUTH, any AUTH MUST get 503)",
        "a second AUTH after 235 is accepted",
    ),
    "auth-before-ehlo": Flaw(
        "state", "RFC 4954 §4 (AUTH only after EHLO advertised it)", "AUTH before EHLO accepted"
    ),
    "auth-unadvertised": Flaw(
        "state",
        "RFC 4954 §4 / RFC 3207 (AUTH not advertised before TLS must not be accepted)",
        "AUTH accepted in cleartext although only offered after STARTTLS",
    ),
    "auth-bypass-after-failure": Flaw(
        "state",
        "RFC 4954 §4/§6 (530 until a successful AUTH); auth bypass class",
        "after a failed or cancelled AUTH the session counts as authenticated "
        "(only with --require-auth)",
    ),
    # -- permissive syntax -----------------------------------------------------------------
    "shell-local-part": Flaw(
        "syntax",
        "RFC 5321 §4.1.2 (Mailbox needs a domain); CVE-2019-10149 (Exim), "
        "CVE-2020-7247 (OpenSMTPD)",
        "a domainless local part with shell metacharacters is accepted",
    ),
    "unknown-param": Flaw(
        "syntax",
        "RFC 5321 §4.1.1.11 (unrecognised parameter: 555)",
        "MAIL/RCPT with an unknown ESMTP parameter accepted",
    ),
    "size-limit-ignored": Flaw(
        "syntax",
        "RFC 1870 §6 (SIZE above the advertised maximum: 552)",
        "MAIL SIZE= larger than the advertised SIZE accepted",
    ),
    "ehlo-no-domain": Flaw(
        "syntax", "RFC 5321 §4.1.1.1 (EHLO needs a domain: 501)", "EHLO without argument"
    ),
    "8bit-address": Flaw(
        "syntax",
        "RFC 5321 §2.4 / RFC 6531 (8-bit addresses only with SMTPUTF8)",
        "a MAIL/RCPT address with octets above 127 accepted without SMTPUTF8",
    ),
    # -- replies ---------------------------------------------------------------------------
    "pipeline-drop-reply": Flaw(
        "reply",
        "RFC 2920 §3.1 (one reply per command, in order)",
        "the reply to a pipelined second RCPT is dropped",
    ),
    "unsolicited-reply": Flaw(
        "reply", "RFC 5321 §4.2 (one reply per command)", "RSET in a transaction gets two replies"
    ),
    "bad-multiline-after-tls": Flaw(
        "reply",
        "RFC 5321 §4.2.1 (continuation lines use '-', the last one SP)",
        "the EHLO reply after STARTTLS ends on a '250-' line",
    ),
    "reply-code-mismatch": Flaw(
        "reply",
        "RFC 5321 §4.2.1 (every line of a reply has the same code)",
        "the HELP reply mixes 214 and 211",
    ),
    "bare-lf-reply": Flaw(
        "reply", "RFC 5321 §4.2 / §2.3.8 (replies end with CRLF)", "VRFY replies end with LF"
    ),
    # -- crashes ---------------------------------------------------------------------------
    "crash-long-line": Flaw(
        "crash", "RFC 5321 §4.5.3.1.4 (500 for a line > 512)", "a command line > long_line"
    ),
    "crash-many-rcpt": Flaw(
        "crash",
        "RFC 5321 §4.5.3.1.8 (452 too many recipients); CVE-2020-28017 class (Exim)",
        "more than many_rcpt RCPTs",
    ),
    "crash-nul": Flaw("crash", "RFC 5321 §2.3.8 / §4.1.1 (NUL is not text)", "a NUL in a command"),
    "crash-long-domain": Flaw(
        "crash",
        "RFC 5321 §4.5.3.1.2 (domain ≤ 255); CVE-2019-16928 class (Exim, long EHLO)",
        "a domain longer than long_domain",
    ),
    "crash-many-labels": Flaw(
        "crash", "RFC 5321 §4.1.2 (Domain ABNF)", "a domain with more than many_labels labels"
    ),
    "crash-ipv6-literal": Flaw(
        "crash",
        "RFC 5321 §4.1.3 (IPv6 address literals)",
        "an IPv6 literal with more than 8 groups or ':::'",
    ),
    "crash-bad-ipv4-literal": Flaw(
        "crash", "RFC 5321 §4.1.3", "an IPv4 literal with an octet above 255"
    ),
    "crash-format-string": Flaw(
        "crash", "CWE-134 (uncontrolled format string)", "'%n' in a command"
    ),
    "crash-auth-base64": Flaw(
        "crash",
        "RFC 4954 §4 (invalid base64: 501); CVE-2018-6789 class (Exim b64decode)",
        "invalid base64 in an AUTH response",
    ),
    "crash-bdat-huge": Flaw(
        "crash",
        "RFC 3030 §2 (chunk size); integer overflow class, CVE-2017-16943 (Exim BDAT)",
        "BDAT size >= 2**31",
    ),
    "crash-bdat-negative": Flaw(
        "crash", "RFC 3030 §2 (chunk-size is 1*DIGIT); CVE-2017-16944 class", "BDAT -N"
    ),
    "crash-size-huge": Flaw(
        "crash", "RFC 1870 §4 (size-value); CWE-190 (integer overflow)", "MAIL SIZE= >= 2**31"
    ),
    "crash-pipeline-burst": Flaw(
        "crash",
        "RFC 2920 §3.1 (any number of pipelined commands)",
        "more than pipeline_burst commands in one read",
    ),
    "crash-long-local-part": Flaw(
        "crash", "RFC 5321 §4.5.3.1.1 (local part ≤ 64)", "a local part > long_local"
    ),
    "crash-source-route": Flaw(
        "crash",
        "RFC 5321 §4.1.2 / Appendix C (source routes must be accepted and ignored)",
        "a path with a source route <@a:u@b>",
    ),
    "crash-quoted-local-part": Flaw(
        "crash", "RFC 5321 §4.1.2 (Quoted-string local part)", 'a quoted local part "..."@d'
    ),
    "crash-error-limit": Flaw(
        "crash",
        "RFC 5321 §4.3.2 (421 closing the channel)",
        "the error limit is reached: dies instead of sending 421",
    ),
    "crash-empty-message": Flaw(
        "crash", "RFC 5321 §4.1.1.4 (an empty message is valid)", "DATA with no content"
    ),
    "crash-long-data-line": Flaw(
        "crash",
        "RFC 5321 §4.5.3.1.6 (text line ≤ 1000; a server must not crash)",
        "a message line longer than long_data_line",
    ),
    "crash-8bit-helo": Flaw(
        "crash", "RFC 5321 §4.1.1.1 (501 for a bad domain)", "an octet > 127 in EHLO/HELO"
    ),
    "crash-long-param": Flaw(
        "crash", "RFC 5321 §4.1.2 (esmtp-value)", "an ESMTP parameter value > long_param"
    ),
    "crash-starttls-twice": Flaw(
        "crash",
        "RFC 3207 §4.2 (no STARTTLS after TLS; a server must not crash on it)",
        "STARTTLS inside TLS",
    ),
    "crash-starttls-in-transaction": Flaw(
        "crash", "RFC 3207 §4 (STARTTLS resets the state)", "STARTTLS after MAIL"
    ),
    # -- hangs -----------------------------------------------------------------------------
    "hang-verb": Flaw(
        "hang", "RFC 5321 §4.5.3.2 (timeouts)", "one verb (random per run) never gets a reply"
    ),
    "hang-long-ehlo": Flaw(
        "hang", "RFC 5321 §4.5.3.2", "an EHLO/HELO argument longer than long_ehlo"
    ),
    # -- resources -------------------------------------------------------------------------
    "quadratic-rcpt": Flaw(
        "resource", "CWE-407 (algorithmic complexity)", "each RCPT costs O(recipients so far)"
    ),
    "quadratic-line": Flaw(
        "resource", "CWE-407 (algorithmic complexity)", "a command line costs O(length**2)"
    ),
}


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The limits drawn for one run; the clean policy choices are drawn here as well."""

    seed: int
    long_line: int
    many_rcpt: int
    long_domain: int
    many_labels: int
    long_local: int
    long_data_line: int
    long_param: int
    long_ehlo: int
    pipeline_burst: int
    hang_verb: str
    # Clean policy, each a legitimate choice of a strict MTA:
    error_limit: int
    max_rcpt: int
    max_size: int
    reject_bare_eol: bool


def thresholds(seed: int) -> Thresholds:
    """Draw every threshold of one run from ``seed``."""
    rng = random.Random(seed)
    return Thresholds(
        seed=seed,
        long_line=rng.randint(600, 3000),
        many_rcpt=rng.randint(5, 40),
        long_domain=rng.randint(70, 240),
        many_labels=rng.randint(8, 30),
        long_local=rng.randint(70, 200),
        long_data_line=rng.randint(1100, 6000),
        long_param=rng.randint(100, 400),
        long_ehlo=rng.randint(70, 240),
        pipeline_burst=rng.randint(15, 60),
        hang_verb=rng.choice(["HELP", "VRFY", "EXPN"]),
        error_limit=rng.randint(10, 25),
        max_rcpt=rng.randint(50, 100),
        max_size=rng.randint(1, 20) * 1024 * 1024,
        reject_bare_eol=rng.random() < 0.5,
    )


def catalogue_markdown() -> str:
    """The catalogue as the Markdown of ``FLAWS.md`` (a test keeps the file in sync)."""
    lines = [
        "# Planted flaws of `flawed_server.py`",
        "",
        "Generated from `flaws.py` by `python tests/fuzz/flawed_server.py --markdown`.",
        "Thresholds (`long_line`, `many_rcpt`, ...) are drawn per run from the server's seed.",
        "",
        "| flaw | class | trigger | rule or advisory |",
        "| --- | --- | --- | --- |",
    ]
    for name, flaw in FLAWS.items():
        trigger = flaw.trigger.replace("|", "\\|")
        lines.append(f"| `{name}` | {flaw.kind} | {trigger} | {flaw.reference} |")
    return "\n".join(lines) + "\n"
